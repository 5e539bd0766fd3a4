"""The demo on one host: a pod keeps a TCP stream and its memory through a checkpoint and a restore.

A counter pod (workloads/counter.c, 64 MiB of memory) streams numbered lines to a client outside it.
The pod is checkpointed and restored with the collection's modules through Ansible, and the client
reports what it saw: the longest pause, gaps, repeats and resets. Everything it made is removed at the end.
"""

from __future__ import annotations

import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]


from tests.support.ansible_cli import module  # noqa: E402
from tests.support.bridges import host_bridge  # noqa: E402
from tests.support.cleanup import adopt_orphans, reap_orphans, remove_pod_leftovers, remove_state_dir  # noqa: E402
from workloads.rootfs import build_rootfs  # noqa: E402
from workloads.stream_client import StreamClient  # noqa: E402

WORK = "/var/tmp/autopod-demo"
STATE = os.path.join(WORK, "state")
BRIDGE, GATEWAY, ADDRESS = "apdemo0", "10.215.0.1", "10.215.0.10"
CRIU = "/usr/local/sbin/criu"


def step(text: str) -> None:
    print("\n== " + text, flush=True)


def main() -> int:
    adopt_orphans()
    remove_state_dir(STATE)
    remove_pod_leftovers("demo-")
    host_bridge(BRIDGE, GATEWAY, up=True)
    client = None
    try:
        rootfs = build_rootfs(os.path.join(WORK, "rootfs"))
        step("create pod demo-counter (64 MiB, %s on %s)" % (ADDRESS, BRIDGE))
        pod = module("pod_create", {"name": "demo-counter", "rootfs": rootfs, "state_dir": STATE,
                                    "command": ["/bin/counter", "7000", "64", "10"],
                                    "network": {"address": ADDRESS + "/24", "gateway": GATEWAY, "bridge": BRIDGE}})
        print("running as PID %s, supervisor %s" % (pod["pod"]["init_pid"], pod["pod"]["supervisor_pid"]))
        client = StreamClient(ADDRESS, 7000, timeout=30)
        client.wait_lines(50)
        print("client outside the pod receives line %d" % client.report()["last_seq"])

        step("checkpoint it (pod stops, its address is released)")
        ckpt = module("pod_checkpoint", {"name": "demo-counter", "state_dir": STATE, "criu_path": CRIU,
                                         "image_dir": "/dev/shm/autopod-demo/demo-counter"})
        print("image %s: %.1f MiB, CRIU froze it for %.0f ms; module work %.0f ms"
              % (ckpt["image_dir"], ckpt["image_size"] / 2**20, ckpt["stats"]["frozen_time_us"] / 1000,
                 ckpt["timings"]["total_ms"]))

        step("restore it")
        rest = module("pod_restore", {"name": "demo-counter", "state_dir": STATE, "criu_path": CRIU,
                                      "image_dir": "/dev/shm/autopod-demo/demo-counter"})
        print("running again as PID %s; CRIU restore %.0f ms; module work %.0f ms"
              % (rest["pod"]["init_pid"], rest["stats"]["restore_time_us"] / 1000, rest["timings"]["total_ms"]))
        client.wait_lines(50)
        verdict = client.verify()
        report = client.report()
        step("what the client saw")
        print("lines received: %d, gaps: %d, repeats: %d, connection errors: %s, memory check: %s"
              % (report["lines"], len(report["gaps"]), len(report["repeats"]), report["error"] or "none", verdict))
        print("longest pause: %.0f ms (includes the time Ansible took to start the restore)" % report["max_pause_ms"])
        ok = not report["gaps"] and not report["repeats"] and not report["error"] and verdict.startswith("verify ok")
        print("\nRESULT: %s" % ("the pod kept its memory and its TCP connection" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        if client:
            client.close()
        remove_state_dir(STATE)
        shutil.rmtree("/dev/shm/autopod-demo", ignore_errors=True)
        host_bridge(BRIDGE, GATEWAY, up=False)
        reap_orphans()


if __name__ == "__main__":
    sys.exit(main())
