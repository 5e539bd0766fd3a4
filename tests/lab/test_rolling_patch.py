"""playbooks/rolling_patch.yml on three lab hosts over SSH: evacuate, patch, reboot, return.

Each lab host has the lab repository's autopod-demo-kernel 1.0 and autopod-demo-tool 1.0 installed;
kernel 1.1 is published as a security update whose maintainer script asks for a reboot, as Debian's
kernel packages do, and tool 1.1 as a regular update, which the default policy (security) leaves. Pods
run on every host, each watched by a client on the lab's client host: Redis on lab1 (writers with
requests always in flight; every acknowledged write is read back), counters on lab2 and lab3, whose
memory holds a marker that a capture on the lab switch must not find during the run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time


from lab import control
from tests.lab import pods
from tests.lab.capture import SwitchCapture
from tests.lab.fleet import HOME, MARKER, REDIS_POD
from tests.support.ansible_cli import ROOT, module, playbook

PLAYBOOK = os.path.join(ROOT, "playbooks", "rolling_patch.yml")


def run(lab, report_dir, options=None, **extra):
    variables = {"autopod_report_dir": str(report_dir)}
    variables.update(extra)
    result = playbook(PLAYBOOK, variables, inventory=lab, options=options)
    os.makedirs(str(report_dir), exist_ok=True)
    with open(os.path.join(str(report_dir), "ansible-playbook.log"), "w") as log:
        log.write(result.stdout)
    return result


def report_of(report_dir):
    files = sorted(f for f in os.listdir(report_dir) if f.endswith(".json"))
    with open(os.path.join(report_dir, files[-1])) as handle:
        return json.load(handle)


def assert_clients_unharmed(watchers):
    # The counters' clients first: reading Redis back keeps this process busy, which their clocks would count.
    for name, watcher in sorted(watchers.items(), key=lambda item: item[0] == REDIS_POD):
        if name == REDIS_POD:
            watcher.wait_requests(100)
            watcher.stop()
            assert watcher.errors() == [] and watcher.lost() == [], watcher.report()
            print("%s: %s" % (name, watcher.report()))
            continue
        watcher.wait_lines(20)
        report = watcher.report()
        assert report["error"] is None and not report["closed_by_peer"], (name, report)
        assert report["gaps"] == [] and report["repeats"] == [], (name, report)
        assert watcher.verify().startswith("verify ok"), name
        print("%s: longest pause %.0f ms over %d lines" % (name, report["max_pause_ms"], report["lines"]))


def start(lab, report_dir):
    """rolling_patch.yml in the background; communicate() waits for it."""
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), PLAYBOOK, "-i", lab,
            "-e", json.dumps({"autopod_report_dir": str(report_dir)})]
    return subprocess.Popen(argv, cwd=ROOT, env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)


def wait_for_locks(lab, hosts, running, timeout=300):
    """Until every host's maintenance lock is held (the run's preflight took them), while the run lives."""
    deadline = time.monotonic() + timeout
    while not all(module("maintenance_lock", {"state": "read"}, host=h, inventory=lab)["held"] for h in hosts):
        assert running.poll() is None, running.communicate()[0][-6000:]
        assert time.monotonic() < deadline, "the run took no locks in %d s" % timeout


def test_rolling_patch_then_nothing_left_to_do_and_a_second_run_at_once_refuses(lab, hosts, fleet, tmp_path):
    boots = {host: control.boot_id(host) for host in hosts}
    with SwitchCapture() as capture:
        running = start(lab, tmp_path / "first")
        wait_for_locks(lab, hosts, running)
        competing = run(lab, tmp_path / "competing")  # started while the first holds every lock
        output = running.communicate(timeout=1800)[0]
    os.makedirs(str(tmp_path / "first"), exist_ok=True)
    (tmp_path / "first" / "ansible-playbook.log").write_text(output)
    assert competing.returncode != 0 and "under maintenance by" in competing.stdout, competing.stdout[-3000:]
    assert running.returncode == 0, output[-6000:]
    assert capture.frames and not capture.holds(MARKER.encode()), "a pod's memory crossed the wire in clear text"
    report = report_of(tmp_path / "first")
    for host in hosts:
        host_report = report["hosts"][host]
        assert host_report["result"] == "patched", host_report
        assert host_report["rebooted"] is True and host_report["packages_updated"] >= 1
        assert host_report["boot_id_before"] == boots[host] != host_report["boot_id_after"]
        assert control.boot_id(host) == host_report["boot_id_after"]
    moves = report["moves"]
    assert all(m["ok"] for m in moves), moves
    assert sorted(m["pod"] for m in moves if m["phase"] == "evacuate") == sorted(HOME)
    assert sorted(m["pod"] for m in moves if m["phase"] == "return") == sorted(HOME)
    for name, home in HOME.items():
        assert pods.running_on(lab, name, hosts) == [home], name
    status = module("patch_status", {}, host="lab1", inventory=lab)
    assert status["needs_patching"] is False and status["reboot_required"] is False
    # policy security installed the security update only: the regular one still waits
    assert [(u["name"], u["security"]) for u in status["updates"]] == [("autopod-demo-tool", False)], status["updates"]
    for host in hosts:
        versions = pods.shell(lab, host, "dpkg-query -W -f '${Package}=${Version} ' autopod-demo-kernel autopod-demo-tool")["stdout"]
        assert versions.split() == ["autopod-demo-kernel=1.1", "autopod-demo-tool=1.0"], (host, versions)
    assert_clients_unharmed(fleet)
    assert os.path.exists(str(tmp_path / "first" / (report["owner"] + ".md")))
    page = open(str(tmp_path / "first" / (report["owner"] + ".html"))).read()
    assert page.count("<circle") == len(moves) and page.count('fill="#3a7"') == len(hosts)  # moves, patches

    second = run(lab, tmp_path / "second")
    assert second.returncode == 0, second.stdout[-6000:]
    # what changes on each host is the package cache patch_status refreshes, and nothing else
    recap = [line for line in second.stdout.splitlines() if line.startswith(("lab1", "lab2", "lab3"))]
    assert len(recap) == 3 and all(re.search(r"\schanged=1\s", line) for line in recap), recap
    for host in hosts:
        versions = pods.shell(lab, host, "dpkg-query -W -f '${Package}=${Version} ' autopod-demo-kernel autopod-demo-tool")
        assert versions["stdout"].split() == ["autopod-demo-kernel=1.1", "autopod-demo-tool=1.0"], host
    again = report_of(tmp_path / "second")
    assert again["moves"] == [], "nothing moves when nothing needs patching"
    assert all(h["result"].startswith("skipped: nothing to do") for h in again["hosts"].values()), again["hosts"]
    assert {host: control.boot_id(host) for host in hosts} == {h: report["hosts"][h]["boot_id_after"] for h in hosts}


def _state_of(lab, hosts):
    """What a dry run must not change: each pod's host and PID, each host's boot and packages."""
    return {host: {"boot": control.boot_id(host),
                   "packages": pods.shell(lab, host, "dpkg-query -W -f '${Package}=${Version} ' "
                                                     "autopod-demo-kernel autopod-demo-tool")["stdout"],
                   "pods": {p["name"]: p["init_pid"] for p in module("pod_info", {}, host=host, inventory=lab)["pods"]
                            if p["state"] == "running"}}
            for host in hosts}


def test_a_dry_run_plans_every_move_and_patch_and_changes_nothing(lab, hosts, fleet, tmp_path):
    before = _state_of(lab, hosts)
    dry = run(lab, tmp_path / "dry", options=["--check"])
    assert dry.returncode == 0, dry.stdout[-6000:]
    assert _state_of(lab, hosts) == before
    report = report_of(tmp_path / "dry")
    assert report["dry_run"] is True
    for host in hosts:
        assert report["hosts"][host]["result"].startswith(
            "planned: install autopod-demo-kernel, then reboot"), report["hosts"][host]
    # a peer that refuses (a rootfs an earlier test left there, say) is named, and the next peer is planned
    planned = [m for m in report["moves"] if m["phase"] == "evacuate" and m["ok"]]
    assert sorted(m["pod"] for m in planned) == sorted(HOME), report["moves"]
    assert all(m["msg"] for m in report["moves"] if not m["ok"]), report["moves"]
    for move in planned:
        assert move["result"] == "planned" and move["strategy"] in ("post-copy", "stop-and-copy"), move
        assert move["downtime_ms"] > 0 and move["bytes"] > 16 << 20 and move["runs_on"] == HOME[move["pod"]], move
        assert move["to"] in hosts and move["to"] != HOME[move["pod"]]
    assert len(re.findall(r"would move by (post-copy|stop-and-copy), [0-9.]+ MiB, expected pause about", dry.stdout)) == 3
    assert "DRY RUN" in open(os.path.join(str(tmp_path / "dry"), report["owner"] + ".md")).read()
    assert_clients_unharmed(fleet)


def test_a_host_that_does_not_come_back_stops_the_rollout(lab, hosts, fleet, tmp_path):
    control.hold("lab1")  # lab1 will not come back from its reboot
    try:
        stopped = run(lab, tmp_path / "stopped", autopod_reboot_timeout=20)
        assert stopped.returncode != 0, "the run must fail"
        report = report_of(tmp_path / "stopped")
        assert report["rollout_stopped"] is True
        assert report["hosts"]["lab1"]["result"] == "failed"
        assert report["hosts"]["lab2"]["result"].startswith("not started")
        assert report["hosts"]["lab3"]["result"].startswith("not started")
        # lab1's pod is alive on a peer and its client never noticed more than a pause
        assert pods.running_on(lab, "rp-a", ["lab2", "lab3"]) in (["lab2"], ["lab3"])
        assert_clients_unharmed(fleet)
    finally:
        control.release("lab1")
