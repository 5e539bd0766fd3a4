"""Benchmark: checkpoint and restore of one pod on this host, through Ansible, by memory size.

For each size (16 MiB, 256 MiB, 1 GiB of incompressible memory touched by the counter workload)
the pod is checkpointed with autopod.autopod.pod_checkpoint and restored with pod_restore, RUNS
times. After every restore the workload recomputes its memory and a TCP client outside the pod
checks its stream for gaps. Printed: medians of the modules' own work time, CRIU's frozen time,
the wall time of each `ansible` call, image bytes; and, measured in the same run, the floor:
writing and reading the same number of bytes where the images live.

Run as root after scripts/setup.sh:  .venv/bin/python bench/checkpoint_restore.py [--image-base DIR]
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import shutil
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from ansible_collections.autopod.autopod.plugins.module_utils import linux  # noqa: E402

from bench import session  # noqa: E402
from tests.support.ansible_cli import module  # noqa: E402
from tests.support.bridges import host_bridge  # noqa: E402
from tests.support.cleanup import adopt_orphans, reap_orphans, remove_pod_leftovers, remove_state_dir  # noqa: E402
from workloads.rootfs import build_rootfs  # noqa: E402
from workloads.stream_client import StreamClient  # noqa: E402

WORK = "/var/tmp/autopod-bench"
BRIDGE, GATEWAY, ADDRESS = "apbench0", "10.214.0.1", "10.214.0.10"
CRIU = "/usr/local/sbin/criu"


def floor(directory: str, size: int) -> dict:
    """The least a checkpoint plus restore of `size` bytes of memory can cost where the images live.

    Write the bytes there (with fdatasync), read them back into a reused buffer, and read them
    into freshly allocated anonymous memory, which is what a restore must do: on this VM freshly
    allocated memory is often slow to touch (virtio-balloon free page reporting hands freed
    memory back to the host), and that cost is part of any restore here.
    """
    path = os.path.join(directory, "floor.bin")
    block = bytearray(os.urandom(16 << 20))
    start = time.monotonic()
    with open(path, "wb", buffering=0) as handle:
        for _block in range(size // len(block)):
            handle.write(block)
        os.fdatasync(handle.fileno())
    written = time.monotonic() - start
    start = time.monotonic()
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(block):
            pass
    read = time.monotonic() - start
    start = time.monotonic()
    fresh = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    with open(path, "rb", buffering=0) as handle:
        handle.readinto(fresh)
    read_fresh = time.monotonic() - start
    fresh.close()
    os.unlink(path)
    return {"write_ms": round(written * 1000, 1), "read_ms": round(read * 1000, 1),
            "read_into_new_memory_ms": round(read_fresh * 1000, 1),
            "total_ms": round((written + read) * 1000, 1),
            "total_new_memory_ms": round((written + read_fresh) * 1000, 1)}


def run_size(rootfs: str, mib: int, runs: int, image_base: str) -> dict:
    state_dir = os.path.join(WORK, "state")
    name = "bench-%d" % mib
    image_dir = os.path.join(image_base, name)
    created = module("pod_create", {"name": name, "rootfs": rootfs, "state_dir": state_dir,
                                    "command": ["/bin/counter", "7000", str(mib), "10"],
                                    "network": {"address": ADDRESS + "/24", "gateway": GATEWAY, "bridge": BRIDGE}})
    assert created.get("changed"), created
    client = StreamClient(ADDRESS, 7000, timeout=120)
    rows = []
    try:
        client.wait_lines(10, timeout=120)
        for attempt in range(runs + 1):
            start = time.monotonic()
            ckpt = module("pod_checkpoint", {"name": name, "state_dir": state_dir, "criu_path": CRIU,
                                             "image_dir": image_dir})
            ckpt_wall = time.monotonic() - start
            assert ckpt.get("changed"), ckpt
            start = time.monotonic()
            rest = module("pod_restore", {"name": name, "state_dir": state_dir, "criu_path": CRIU,
                                          "image_dir": image_dir})
            rest_wall = time.monotonic() - start
            assert rest.get("changed"), rest
            client.wait_lines(5, timeout=60)
            verdict = client.verify(timeout=120)
            report = client.report()
            assert verdict.startswith("verify ok") and not report["gaps"] and not report["error"], (verdict, report)
            if attempt == 0:
                continue  # warm-up: the first cycle also pays for memory the VM has not touched yet
            rows.append({
                "checkpoint_module_ms": ckpt["timings"]["total_ms"],
                "restore_module_ms": rest["timings"]["total_ms"],
                "module_total_ms": ckpt["timings"]["total_ms"] + rest["timings"]["total_ms"],
                "frozen_ms": ckpt["stats"]["frozen_time_us"] / 1000,
                "criu_restore_ms": rest["stats"]["restore_time_us"] / 1000,
                "checkpoint_ansible_wall_ms": ckpt_wall * 1000, "restore_ansible_wall_ms": rest_wall * 1000,
                "image_bytes": ckpt["image_size"],
            })
    finally:
        client.close()
        module("pod_create", {"name": name, "state": "absent", "state_dir": state_dir, "stop_timeout": 5})
        reap_orphans()
    medians = {key: round(statistics.median(r[key] for r in rows), 1) for key in rows[0]}
    medians["runs"] = len(rows)
    return medians


def private_tmpfs_run() -> None:
    """From here on this process and its children see a fresh tmpfs at /run."""
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount("tmpfs", "/run", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=755")
    for sub in ("lock", "netns"):
        os.mkdir(os.path.join("/run", sub))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--image-base", default="/dev/shm/autopod-bench",
                        help="where images are written (default: tmpfs)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="16,256,1024", help="MiB, comma separated")
    parser.add_argument("--tmpfs-run", action="store_true",
                        help="run in a private mount namespace whose /run is a tmpfs, as on a systemd host, so "
                             "CRIU can cache its kernel probe in /run/criu.kdat (it refuses to on other filesystems)")
    args = parser.parse_args()
    session.require_root()
    if args.tmpfs_run:
        private_tmpfs_run()
    results = {"machine": {"image_base": args.image_base, "run_is_tmpfs": args.tmpfs_run}, "sizes": {}}

    def _cleanup() -> None:
        remove_state_dir(os.path.join(WORK, "state"))
        host_bridge(BRIDGE, GATEWAY, up=False)
        shutil.rmtree(args.image_base, ignore_errors=True)
        reap_orphans()

    with session.measuring("checkpoint_restore", _cleanup) as measured:
        try:
            adopt_orphans()
            remove_state_dir(os.path.join(WORK, "state"))
            remove_pod_leftovers("bench-")
            host_bridge(BRIDGE, GATEWAY, up=True)
            os.makedirs(args.image_base, mode=0o700, exist_ok=True)
            rootfs = build_rootfs(os.path.join(WORK, "rootfs"))
            results["machine"].update(kernel=os.uname().release, cpus=os.cpu_count(),
                                      criu=module("criu_info", {"criu_path": CRIU}).get("version"))
            for mib in (int(s) for s in args.sizes.split(",")):
                row = run_size(rootfs, mib, args.runs, args.image_base)
                row["floor"] = floor(args.image_base, mib << 20)
                results["sizes"]["%d MiB" % mib] = row
                measured.add("%d MiB" % mib, row)
        finally:
            print_table(results)
            print(json.dumps(results, indent=1))
    return measured.exit_code


def print_table(results: dict) -> None:
    header = ("size", "checkpoint ms", "restore ms", "module total ms", "CRIU frozen ms", "image MiB",
              "floor w+r ms", "floor w+r new mem ms", "total / floor (new mem)", "ansible wall ckpt+restore ms")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for size, r in results["sizes"].items():
        f = r["floor"]
        print("| %s | %.0f | %.0f | %.0f | %.0f | %.1f | %.0f | %.0f | %.1f (%.1f) | %.0f |" % (
            size, r["checkpoint_module_ms"], r["restore_module_ms"], r["module_total_ms"], r["frozen_ms"],
            r["image_bytes"] / 2**20, f["total_ms"], f["total_new_memory_ms"],
            r["module_total_ms"] / f["total_ms"], r["module_total_ms"] / f["total_new_memory_ms"],
            r["checkpoint_ansible_wall_ms"] + r["restore_ansible_wall_ms"]))


if __name__ == "__main__":
    sys.exit(main())
