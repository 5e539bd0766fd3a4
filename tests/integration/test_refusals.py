"""Bad input and failures: a clear error, and nothing lost or changed."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess

import pytest

from ansible_collections.autopod.autopod.plugins.module_utils import linux, network
from tests.integration.conftest import BRIDGE_ADDRESS, WORK, counter_pod
from tests.support.ansible_cli import module
from tests.support.prerequisites import distribution_criu
from workloads.stream_client import StreamClient

OLD_CRIU, OLD_CRIU_VERSION = distribution_criu()


def _digest(directory):
    return {name: hashlib.sha256(open(os.path.join(directory, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(directory))}


def _running(pod):
    return linux.process_alive(pod["init_pid"], linux.process_start_time(pod["init_pid"]))


BAD_NAMES = ["", "x" * 33, "../x", "two words", "Web", "web;reboot", "$(reboot)", "a|b"]


@pytest.mark.parametrize("module_name, name", [("pod_create", n) for n in BAD_NAMES] + [
    (m, n) for m in ("pod_checkpoint", "pod_restore", "pod_info") for n in ("", "../x", "$(reboot)")])
def test_invalid_names_are_refused_before_anything_is_touched(adhoc, rootfs, state_dir, module_name, name):
    args = {"name": name, "state_dir": state_dir}
    if module_name == "pod_create":
        args.update(rootfs=rootfs, command=["/bin/counter", "7000"])
    result = adhoc(module_name, **args)
    assert result.get("failed"), result
    assert "invalid pod name" in result["msg"]
    assert not os.path.exists(state_dir)


def test_missing_rootfs_and_missing_bridge_are_refused(state_dir, bridge):
    result = module("pod_create", {"name": "it-bad", "rootfs": "/nonexistent/rootfs", "command": ["/bin/sh"],
                                   "state_dir": state_dir})
    assert result["failed"] and "rootfs /nonexistent/rootfs does not exist" in result["msg"]
    result = module("pod_create", {"name": "it-bad", "rootfs": "/", "command": ["/bin/sh"], "state_dir": state_dir})
    assert result["failed"] and "not the host's /" in result["msg"]
    result = module("pod_create", {"name": "it-bad", "rootfs": WORK, "command": ["/bin/sh"], "state_dir": state_dir,
                                   "network": {"address": "10.213.0.50/24", "bridge": "nosuchbr0"}})
    assert result["failed"] and "bridge nosuchbr0 does not exist" in result["msg"]
    assert not os.path.exists(state_dir) and not network.identity_exists("it-bad")


def test_addresses_in_use_and_duplicates_are_refused(rootfs, bridge, state_dir):
    taken = module("pod_create", counter_pod("it-bad", rootfs, state_dir, network={
        "address": BRIDGE_ADDRESS + "/24", "bridge": bridge}))
    assert taken["failed"] and "already used on this host by interface apit0" in taken["msg"]
    assert not network.identity_exists("it-bad")

    first = module("pod_create", counter_pod("it-one", rootfs, state_dir, "10.213.0.40", mib=1))
    assert first["changed"]
    clash = module("pod_create", counter_pod("it-two", rootfs, state_dir, "10.213.0.40", mib=1))
    assert clash["failed"] and "already belongs to pod it-one" in clash["msg"]
    assert not network.identity_exists("it-two")

    redefined = module("pod_create", counter_pod("it-one", rootfs, state_dir, "10.213.0.40", mib=2))
    assert redefined["failed"] and "is running with a different command" in redefined["msg"]
    after = module("pod_info", {"name": "it-one", "state_dir": state_dir})["pods"][0]
    assert after["init_pid"] == first["pod"]["init_pid"] and _running(after)
    assert [p["name"] for p in module("pod_info", {"state_dir": state_dir})["pods"]] == ["it-one"]


def test_a_command_that_cannot_start_leaves_nothing(rootfs, bridge, state_dir):
    result = module("pod_create", {"name": "it-bad", "rootfs": rootfs, "command": ["/bin/no-such-program"],
                                   "state_dir": state_dir,
                                   "network": {"address": "10.213.0.51/24", "bridge": bridge}})
    assert result["failed"] and "cannot start /bin/no-such-program" in result["msg"]
    assert module("pod_info", {"state_dir": state_dir})["pods"] == []
    assert not network.identity_exists("it-bad")


def test_checkpoint_needs_a_running_pod_and_restore_an_image(rootfs, state_dir, criu_path):
    missing = module("pod_checkpoint", {"name": "it-ghost", "state_dir": state_dir, "criu_path": criu_path})
    assert missing["failed"] and "no pod named it-ghost" in missing["msg"]
    module("pod_create", {"name": "it-idle", "rootfs": rootfs, "command": ["/bin/counter", "7000"],
                          "state_dir": state_dir, "state": "stopped"})
    stopped = module("pod_checkpoint", {"name": "it-idle", "state_dir": state_dir, "criu_path": criu_path})
    assert stopped["failed"] and "is not running (it is stopped)" in stopped["msg"]
    no_image = module("pod_restore", {"name": "it-idle", "state_dir": state_dir, "criu_path": criu_path})
    assert no_image["failed"] and "no checkpoint image at" in no_image["msg"]


def test_missing_or_too_old_criu_is_refused_and_the_pod_keeps_running(rootfs, state_dir):
    created = module("pod_create", counter_pod("it-crit", rootfs, state_dir))
    for criu_path, message in (("/nonexistent/criu", "CRIU was not found"),
                               (OLD_CRIU, "CRIU %s is too old for kernel" % OLD_CRIU_VERSION)):
        result = module("pod_checkpoint", {"name": "it-crit", "state_dir": state_dir, "criu_path": criu_path})
        assert result["failed"] and message in result["msg"], result
        assert "install a newer CRIU" in result["msg"] or "criu role" in result["msg"]
    info = module("pod_info", {"name": "it-crit", "state_dir": state_dir})["pods"][0]
    assert info["state"] == "running" and info["init_pid"] == created["pod"]["init_pid"]
    assert not os.path.exists(os.path.join(state_dir, "images", "it-crit"))
    report = module("criu_info", {"criu_path": OLD_CRIU})
    assert report["usable"] is False and report["version"] == OLD_CRIU_VERSION and len(report["problems"]) >= 2


def test_image_inside_the_rootfs_is_refused(rootfs, state_dir, criu_path):
    module("pod_create", counter_pod("it-in", rootfs, state_dir))
    result = module("pod_checkpoint", {"name": "it-in", "state_dir": state_dir, "criu_path": criu_path,
                                       "image_dir": os.path.join(rootfs, "img")})
    assert result["failed"] and "inside the pod's rootfs" in result["msg"]


@pytest.fixture
def tiny_tmpfs():
    path = os.path.join(WORK, "tiny")
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", path], check=True)
    yield path
    subprocess.run(["umount", "-l", path], check=False)
    shutil.rmtree(path, ignore_errors=True)


def test_a_checkpoint_that_fails_half_way_leaves_the_pod_running(rootfs, bridge, state_dir, criu_path, tiny_tmpfs):
    address = "10.213.0.41"
    created = module("pod_create", counter_pod("it-full", rootfs, state_dir, address, mib=8))
    client = StreamClient(address, 7000)
    try:
        client.wait_lines(5)
        image_dir = os.path.join(tiny_tmpfs, "it-full")
        result = module("pod_checkpoint", {"name": "it-full", "state_dir": state_dir, "criu_path": criu_path,
                                           "image_dir": image_dir})
        assert result["failed"] and "failed and is still running" in result["msg"], result
        assert "No space left on device" in result["msg"], result["msg"]
        assert os.listdir(tiny_tmpfs) == [], "no partial image may be left behind"
        info = module("pod_info", {"name": "it-full", "state_dir": state_dir})["pods"][0]
        assert info["state"] == "running" and info["init_pid"] == created["pod"]["init_pid"]
        client.wait_lines(20)
        report = client.report()
        assert report["error"] is None and report["gaps"] == [] and report["repeats"] == [], report
        assert client.verify().startswith("verify ok")
    finally:
        client.close()


def test_a_damaged_or_failing_restore_keeps_the_image_for_a_retry(rootfs, bridge, state_dir, criu_path, tmp_path):
    own_rootfs = str(tmp_path / "rootfs")
    shutil.copytree(rootfs, own_rootfs, symlinks=True)
    address = "10.213.0.42"
    module("pod_create", counter_pod("it-trunc", own_rootfs, state_dir, address, mib=4))
    client = StreamClient(address, 7000)
    try:
        client.wait_lines(5)
        ckpt = module("pod_checkpoint", {"name": "it-trunc", "state_dir": state_dir, "criu_path": criu_path})
        image = ckpt["image_dir"]
        intact = _digest(image)
        restore = {"name": "it-trunc", "state_dir": state_dir, "criu_path": criu_path}

        # 1. a truncated pages file is caught before CRIU sees it (CRIU would retry the short read forever)
        pages = max(glob.glob(os.path.join(image, "pages-*.img")), key=os.path.getsize)
        saved = open(pages, "rb").read()
        os.truncate(pages, len(saved) // 2)
        damaged = module("pod_restore", restore)
        assert damaged["failed"] and "is damaged (truncated or altered)" in damaged["msg"], damaged
        open(pages, "wb").write(saved)
        inventory = os.path.join(image, "inventory.img")
        os.rename(inventory, inventory + ".away")
        incomplete = module("pod_restore", restore)
        assert incomplete["failed"] and "incomplete: inventory.img missing" in incomplete["msg"]
        os.rename(inventory + ".away", inventory)

        # 2. CRIU itself fails: the program the pod ran is gone from its rootfs
        program = os.path.join(own_rootfs, "bin", "counter")
        os.rename(program, program + ".moved")
        failed = module("pod_restore", restore)
        assert failed["failed"] and "the image at %s is kept for a retry" % image in failed["msg"], failed
        assert "criu restore failed" in failed["msg"]
        assert _digest(image) == intact, "a failed restore must not touch the image"
        assert not network.identity_exists("it-trunc")
        assert module("pod_info", {"name": "it-trunc", "state_dir": state_dir})["pods"][0]["state"] == "checkpointed"

        # 3. put it back: the same image restores, and the client never noticed more than a pause
        os.rename(program + ".moved", program)
        retried = module("pod_restore", restore)
        assert retried["changed"] and retried["pod"]["state"] == "running", retried
        client.wait_lines(10)
        report = client.report()
        assert report["error"] is None and report["gaps"] == [] and report["repeats"] == [], report
    finally:
        client.close()
