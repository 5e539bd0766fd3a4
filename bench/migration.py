"""Benchmark: moving a pod between two lab hosts, against Podman's checkpoint --export / restore --import.

For each memory size (the counter workload touches it once, then leaves it idle), each strategy
(post-copy, stop-and-copy) and each encryption (the move's TLS, and clear text), the pod moves lab1
-> lab2 -> lab1 ... RUNS times after one warm-up move, with copy storage and images on tmpfs. A TCP
client on the lab's client host reads the pod's stream throughout; after every move the stream is
checked for gaps and the workload recomputes its memory. Medians of: the longest pause the client
saw, the time the pod was frozen (from the dump's start until it ran on the destination), bytes sent
between the hosts, and the end-to-end time of the move (pod_receive plus pod_migrate, which returns
once every page is across), the rate between the hosts (bytes moved over pod_migrate's time) and the
CPU time the whole machine spent per GiB moved (both lab hosts run on it: CRIU, the relays, TLS, the
kernel's networking).

In the same run, the baseline: the same workload in a Podman container on this machine, checkpointed
with `podman container checkpoint --export` and restored with `podman container restore --import`
(on the same host, so no copy between hosts is even counted), TCP connections kept; the client
reads it over Podman's bridge.

Run as root after scripts/setup.sh:
    .venv/bin/python bench/migration.py [--runs 5] [--sizes 16,256,1024] [--encryption tls,none]
It installs podman and runc from Debian if missing and writes /etc/containers/containers.conf as
docs/design.md describes ("The Podman baseline": runc, cgroupfs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import shlex
import time
from typing import Dict, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from bench import session  # noqa: E402
from lab import control  # noqa: E402
from lab import topology as topo  # noqa: E402
from tests.lab import pods  # noqa: E402
from tests.support.cleanup import reap_orphans  # noqa: E402
from workloads.stream_client import StreamClient  # noqa: E402

CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


def _medians(rows):
    return {key: round(statistics.median(r[key] for r in rows), 1) for key in rows[0]}


def _busy_cpu_seconds() -> float:
    """CPU time the whole machine (both lab hosts, the client, everything) has spent busy so far."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def measure_moves(inventory: str, mib: int, strategy: str, runs: int, encryption: str) -> dict:
    name = "bench-%d-%s-%s" % (mib, strategy.split("-")[0], encryption)
    pods.place(inventory, "lab1", name, 10, mib=mib)
    watcher = pods.client(10)
    rows, here, there = [], "lab1", "lab2"
    try:
        watcher.wait_lines(10, timeout=120)
        for attempt in range(runs + 1):
            watcher.reset_pause_clock()
            start, cpu = time.monotonic(), _busy_cpu_seconds()
            moved = pods.move(inventory, name, here, there, strategy=strategy, encryption=encryption)
            end_to_end = (time.monotonic() - start) * 1000
            cpu = _busy_cpu_seconds() - cpu
            assert moved.get("changed"), moved
            watcher.wait_lines(20, timeout=60)
            verdict = watcher.verify(timeout=120)
            report = watcher.report()
            assert verdict.startswith("verify ok") and not report["gaps"] and not report["error"], (verdict, report)
            here, there = there, here
            if attempt:  # the first move warms the VM's memory up
                moved_bytes = moved["bytes"]["total"]
                rows.append({"client_pause_ms": report["max_pause_ms"], "frozen_ms": moved["frozen_ms"],
                             "bytes_between_hosts": moved_bytes, "end_to_end_ms": end_to_end,
                             "migrate_module_ms": moved["timings"]["total_ms"],
                             "mib_per_s": moved_bytes / 2**20 / (moved["timings"]["total_ms"] / 1000),
                             "cpu_s_per_gib": cpu / (moved_bytes / 2**30)})
    finally:
        watcher.close()
        pods.remove_everywhere(inventory, ["lab1", "lab2"])
    return dict(_medians(rows), runs=len(rows))


class PodmanHost:
    """Where the Podman baseline runs, and how its client reaches the container: this machine (the client
    reads over Podman's bridge), or a lab host over SSH (a QEMU guest, whose kernel has the soft-dirty
    tracking `--pre-checkpoint` needs), where the container's port is published on the guest's address."""

    IMAGE = "localhost/autopod-counter"
    PORT = "7000"

    def __init__(self, lab_host: Optional[str] = None) -> None:
        self.lab_host = lab_host
        # a guest's root is an overlay, and Podman refuses its overlay driver on one: vfs, kept in the guest's RAM
        self.options = [] if lab_host is None else ["--storage-driver", "vfs", "--root", "/run/autopod-podman/root",
                                                    "--runroot", "/run/autopod-podman/run"]

    def run(self, *argv: str, check: bool = True) -> str:
        if self.lab_host is None:
            return subprocess.run(list(argv), check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  universal_newlines=True).stdout.strip()
        return control.ssh(self.lab_host, shlex.join(argv), check=check).strip()

    def podman(self, *args: str, check: bool = True) -> str:
        return self.run("podman", *self.options, *args, check=check)

    def prepare(self, rootfs: str) -> None:
        """The counter image, made from the lab's rootfs (no registry is reachable)."""
        self.run("sh", "-c", "tar -C %s -c . | %s >/dev/null" % (
            shlex.quote(rootfs), shlex.join(["podman", *self.options, "import", "-", self.IMAGE])))

    def start_counter(self, name: str, mib: int) -> StreamClient:
        """The counter workload in a container, and a client reading its stream."""
        self.podman("rm", "-f", name, check=False)
        publish = [] if self.lab_host is None else ["--publish", "%s:%s" % (self.PORT, self.PORT)]
        self.podman("run", "-d", "--name", name, *publish, self.IMAGE, "/bin/counter", self.PORT, str(mib), "10")
        if self.lab_host is None:
            return StreamClient(self.podman("inspect", name, "--format", "{{.NetworkSettings.IPAddress}}"),
                                int(self.PORT), timeout=120)
        return StreamClient(topo.host_ip(topo.host_index(self.lab_host)), int(self.PORT),
                            topo.netns_path(topo.CLIENT_NETNS), timeout=120)


def install_podman() -> None:
    """Podman and runc from Debian, configured as docs/design.md says; before the lab starts, since the QEMU
    guests run this machine's userland."""
    if not shutil.which("podman") or not shutil.which("runc"):
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "podman", "runc"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    os.makedirs("/etc/containers", exist_ok=True)
    with open("/etc/containers/containers.conf", "w") as handle:
        handle.write(CONTAINERS_CONF)


def _checkpoint_restore(where: PodmanHost, name: str, archive: str, previous: Optional[str]) -> Dict[str, float]:
    """One checkpoint and restore of the container in place, TCP connections kept; with `previous`, a
    pre-checkpoint first (the container keeps running) and the checkpoint sends only what changed since."""
    start = time.monotonic()
    pre_checkpointed = start
    if previous:
        where.podman("container", "checkpoint", "--pre-checkpoint", "--export", previous, name)
        pre_checkpointed = time.monotonic()
    where.podman("container", "checkpoint", "--tcp-established", "--export", archive, name,
                 *(["--with-previous"] if previous else []))
    checkpointed = time.monotonic()
    where.podman("rm", name)
    where.podman("container", "restore", "--tcp-established", "--import", archive,
                 *(["--import-previous", previous] if previous else []))
    restored = time.monotonic()
    archives = [archive] + ([previous] if previous else [])
    return {"pre_checkpoint_ms": (pre_checkpointed - start) * 1000,
            "checkpoint_export_ms": (checkpointed - pre_checkpointed) * 1000,
            "restore_import_ms": (restored - checkpointed) * 1000,
            "end_to_end_ms": (restored - start) * 1000,
            "archive_bytes": sum(int(where.run("stat", "-c", "%s", path)) for path in archives)}


def measure_podman(where: PodmanHost, mib: int, runs: int, pre_checkpoint: bool = False) -> dict:
    name = "autopod-bench-%d" % mib
    watcher = where.start_counter(name, mib)
    directory = where.run("mktemp", "-d", "--tmpdir", "autopod-podman.XXXXXX")  # mode 0700: memory is secret
    rows = []
    try:
        watcher.wait_lines(10, timeout=120)
        for attempt in range(runs + 1):
            watcher.reset_pause_clock()
            row = _checkpoint_restore(where, name, directory + "/checkpoint.tar.zst",
                                      directory + "/pre-checkpoint.tar.zst" if pre_checkpoint else None)
            watcher.wait_lines(20, timeout=120)
            verdict = watcher.verify(timeout=120)
            report = watcher.report()
            assert verdict.startswith("verify ok") and not report["gaps"] and not report["error"], (verdict, report)
            if attempt:
                rows.append(dict(client_pause_ms=report["max_pause_ms"], **row))
            where.run("sh", "-c", "rm -f %s/*" % shlex.quote(directory))
    finally:
        watcher.close()
        where.podman("rm", "-f", name, check=False)
        where.run("rm", "-rf", directory, check=False)
    return dict(_medians(rows), runs=len(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="16,256,1024", help="MiB, comma separated")
    parser.add_argument("--strategies", default="post-copy,stop-and-copy")
    parser.add_argument("--encryption", default="tls,none", help="tls, none, or both (the default)")
    parser.add_argument("--no-podman", action="store_true")
    args = parser.parse_args()
    results = {"machine": {"kernel": os.uname().release, "cpus": os.cpu_count(), "images": "tmpfs",
                           "storage": "copy", "lab_hosts": 2}, "autopod": {}, "podman": {}}
    with session.measuring("migration", session.lab_cleanup) as measured:
        try:
            inventory = session.lab_up(2)
            pods.base_rootfs()
            for mib in (int(s) for s in args.sizes.split(",")):
                for strategy in args.strategies.split(","):
                    for encryption in args.encryption.split(","):
                        case = "%d MiB %s %s" % (mib, strategy, "TLS" if encryption == "tls" else "clear")
                        results["autopod"][case] = measure_moves(inventory, mib, strategy, args.runs, encryption)
                        measured.add("autopod " + case, results["autopod"][case])
                        reap_orphans()
            if not args.no_podman:
                install_podman()
                here = PodmanHost()
                here.prepare(os.path.join(topo.shared_source(), "base-rootfs"))
                for mib in (int(s) for s in args.sizes.split(",")):
                    results["podman"]["%d MiB" % mib] = measure_podman(here, mib, args.runs)
                    measured.add("podman %d MiB" % mib, results["podman"]["%d MiB" % mib])
        finally:
            print_tables(results)
            print(json.dumps(results, indent=1))
    sys.exit(measured.exit_code)


def print_tables(results: dict) -> None:
    print("| AutoPod move (lab1 <-> lab2) | client's longest pause ms | frozen ms | MiB between hosts "
          "| pod_migrate ms | MiB/s | machine CPU s per GiB | end-to-end ms (3 Ansible tasks) "
          "| Podman export+import pause ms | Podman / AutoPod pause |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case, r in results["autopod"].items():
        podman = results["podman"].get(" ".join(case.split()[:2]), {})
        pause = podman.get("client_pause_ms")
        print("| %s | %.0f | %.0f | %.1f | %.0f | %.0f | %.2f | %.0f | %s | %s |" % (
            case, r["client_pause_ms"], r["frozen_ms"], r["bytes_between_hosts"] / 2**20, r["migrate_module_ms"],
            r["mib_per_s"], r["cpu_s_per_gib"], r["end_to_end_ms"],
            "%.0f" % pause if pause else "-", "%.1fx" % (pause / r["client_pause_ms"]) if pause else "-"))
    if results["podman"]:
        print()
        print("| Podman (same host) | client's longest pause ms | checkpoint --export ms | restore --import ms "
              "| archive MiB |")
        print("|---|---|---|---|---|")
        for case, r in results["podman"].items():
            print("| %s | %.0f | %.0f | %.0f | %.1f |" % (
                case, r["client_pause_ms"], r["checkpoint_export_ms"], r["restore_import_ms"],
                r["archive_bytes"] / 2**20))


if __name__ == "__main__":
    main()
