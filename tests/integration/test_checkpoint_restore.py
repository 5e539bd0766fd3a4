"""The central test: a pod with memory and a TCP client outside it survives checkpoint and restore."""

from __future__ import annotations

import os
import stat

from ansible_collections.autopod.autopod.plugins.module_utils import network
from tests.integration.conftest import counter_pod
from tests.support.ansible_cli import module
from workloads.stream_client import StreamClient


def _modes(path):
    return {os.path.join(d, n): stat.S_IMODE(os.stat(os.path.join(d, n)).st_mode)
            for d, dirs, files in os.walk(path) for n in dirs + files}


def _no_new_privs(pid):
    with open("/proc/%d/status" % pid) as status:
        return [line.split()[1] for line in status if line.startswith("NoNewPrivs:")][0]


def test_tcp_stream_and_memory_survive_checkpoint_and_restore(rootfs, bridge, state_dir, criu_path):
    address = "10.213.0.20"
    created = module("pod_create", dict(counter_pod("it-stream", rootfs, state_dir, address, mib=16),
                                        no_new_privs=True))
    assert created["changed"] and created["pod"]["state"] == "running", created
    assert _no_new_privs(created["pod"]["init_pid"]) == "1"
    client = StreamClient(address, 7000)
    try:
        client.wait_lines(20)
        assert client.verify().startswith("verify ok")

        ckpt = module("pod_checkpoint", {"name": "it-stream", "state_dir": state_dir, "criu_path": criu_path})
        assert ckpt["changed"] and ckpt["pod"]["state"] == "checkpointed", ckpt
        counter_at_checkpoint = client.report()["last_counter"]
        assert ckpt["stats"]["frozen_time_us"] > 0 and ckpt["image_size"] > 16 * 1024 * 1024
        assert ckpt["criu"]["version"].startswith("4.")
        assert not network.identity_exists("it-stream"), "the network identity must be released"
        # images hold process memory: root-only
        modes = _modes(ckpt["image_dir"])
        assert modes and all(m == (0o700 if os.path.isdir(p) else 0o600) for p, m in modes.items()), modes
        assert stat.S_IMODE(os.stat(ckpt["image_dir"]).st_mode) == 0o700

        again = module("pod_checkpoint", {"name": "it-stream", "state_dir": state_dir, "criu_path": criu_path})
        assert not again["changed"], "a second checkpoint of a checkpointed pod changes nothing"

        restored = module("pod_restore", {"name": "it-stream", "state_dir": state_dir, "criu_path": criu_path})
        assert restored["changed"] and restored["pod"]["state"] == "running", restored
        assert _no_new_privs(restored["pod"]["init_pid"]) == "1", "CRIU keeps the pod's no_new_privs"
        assert restored["stats"]["restore_time_us"] > 0
        assert restored["image_removed"] and not os.path.exists(ckpt["image_dir"])

        client.wait_lines(50)
        report = client.report()
        assert report["error"] is None and not report["closed_by_peer"], report
        assert report["gaps"] == [] and report["repeats"] == [], report
        assert report["counter_regressions"] == [], report
        assert report["last_counter"] > counter_at_checkpoint >= 20
        assert client.verify().startswith("verify ok"), "the pod's memory must come back intact"
        print("longest pause seen by the client: %.1f ms" % report["max_pause_ms"])

        idle = module("pod_restore", {"name": "it-stream", "state_dir": state_dir, "criu_path": criu_path})
        assert not idle["changed"]
    finally:
        client.close()


def test_checkpoint_leaving_the_pod_running(rootfs, bridge, state_dir, criu_path):
    address = "10.213.0.21"
    module("pod_create", counter_pod("it-snap", rootfs, state_dir, address, mib=1))
    client = StreamClient(address, 7000)
    try:
        client.wait_lines(5)
        first = module("pod_checkpoint", {"name": "it-snap", "state_dir": state_dir, "criu_path": criu_path,
                                          "leave_running": True})
        second = module("pod_checkpoint", {"name": "it-snap", "state_dir": state_dir, "criu_path": criu_path,
                                           "leave_running": True})
        assert first["changed"] and second["changed"], "every snapshot is a new checkpoint"
        assert second["pod"]["state"] == "running" and network.identity_exists("it-snap")
        client.wait_lines(10)
        report = client.report()
        assert report["gaps"] == [] and report["error"] is None, report
        info = module("pod_info", {"name": "it-snap", "state_dir": state_dir})["pods"][0]
        assert info["last_checkpoint"]["image_dir"] == second["image_dir"]
        assert os.path.isdir(second["image_dir"]) and not any(
            e.startswith("it-snap.") for e in os.listdir(os.path.dirname(second["image_dir"])))
    finally:
        client.close()
