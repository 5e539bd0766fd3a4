"""rolling_patch.yml where the patch is a kernel upgrade: lab1 moves from Debian's 6.1 to 6.12.

lab1 runs 6.1, lab2 already 6.12 (the guests fixture); the lab repository holds Debian's
linux-image-amd64 metapackage of both series, so for lab1 the upgrade to 6.12 is pending. The
playbook moves lab1's pod to lab2, upgrades lab1 (apt installs the 6.12 image), sees that the
running kernel is now older than the newest installed one, reboots lab1 into 6.12 (its keeper
boots the newest kernel in its /boot) and brings the pod back; lab2 has nothing to do.
"""

from __future__ import annotations

import pytest

from lab import control
from tests.lab import pods
from tests.lab.test_rolling_patch import assert_clients_unharmed, report_of, run
from tests.qemu.test_cross_kernel import running_kernel
from tests.support.ansible_cli import module


@pytest.mark.kernel_upgrade
def test_rolling_patch_upgrades_the_kernel_and_brings_the_pod_back(guests, tmp_path):
    before = {host: running_kernel(guests, host) for host in ("lab1", "lab2")}
    status = module("patch_status", {"policy": "all"}, host="lab1", inventory=guests)
    assert "linux-image-amd64" in [u["name"] for u in status["updates"]], status["updates"]
    pods.place(guests, "lab1", "kp-web", 3)
    watchers = {"kp-web": pods.client(3)}
    try:
        watchers["kp-web"].wait_lines(10)
        boot_before = control.boot_id("lab1")
        result = run(guests, tmp_path / "run", autopod_policy="all", autopod_image_dir="/run/autopod")
        assert result.returncode == 0, result.stdout[-6000:]
        report = report_of(tmp_path / "run")
        lab1, lab2 = report["hosts"]["lab1"], report["hosts"]["lab2"]
        assert lab1["result"] == "patched" and lab1["rebooted"] is True, lab1
        assert lab1["kernel_before"] == before["lab1"] and lab1["kernel_after"] == before["lab2"], lab1
        assert any("older than the newest installed kernel" in r for r in lab1["reboot_reasons"]), lab1
        assert lab2["result"].startswith("skipped: nothing to do"), lab2
        assert control.boot_id("lab1") != boot_before
        assert running_kernel(guests, "lab1") == before["lab2"]
        assert [(m["pod"], m["phase"], m["ok"]) for m in report["moves"]] == \
            [("kp-web", "evacuate", True), ("kp-web", "return", True)], report["moves"]
        assert pods.running_on(guests, "kp-web", ["lab1", "lab2"]) == ["lab1"]
        assert_clients_unharmed(watchers)
        print("lab1: %s -> %s; report: %s" % (lab1["kernel_before"], lab1["kernel_after"], lab1))
    finally:
        for watcher in watchers.values():
            watcher.close()
        pods.remove_everywhere(guests, ["lab1", "lab2"])
