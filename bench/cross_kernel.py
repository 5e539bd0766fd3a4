"""Benchmark: a move across kernels (QEMU guests on Debian's 6.1 and 6.12) next to the same move
between namespace lab hosts, so that the cost of emulation is not mistaken for the cost of the method.

The same measurement as bench/migration.py (its measure_moves): a 16 MiB counter pod moves
lab1 -> lab2 -> lab1 ... RUNS times after a warm-up move, copy storage, images on tmpfs, a client on
the lab's client host checking every line; medians of the client's longest pause, the frozen time,
bytes between hosts and the end-to-end time through Ansible. On the guests every move crosses
kernels (6.1 <-> 6.12), and everything in them (CRIU, Python, Ansible's modules) runs under TCG.
Moves are encrypted (TLS, the default).

In the same run, on the first guest (its kernel has the soft-dirty tracking this machine's lacks),
Podman's baseline on the same workload, the client reading through a published port: `container
checkpoint --export` + `restore --import`, and the same with a `--pre-checkpoint` first (the container
keeps running), then `checkpoint --with-previous` + `restore --import-previous`. Podman restores in
place: nothing crosses between hosts or kernels, so its figures are a floor for a move, not a move.

Run as root after scripts/setup.sh:  .venv/bin/python bench/cross_kernel.py [--runs 3] [--no-podman]
It installs podman and runc from Debian if missing (as bench/migration.py does).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from bench.migration import PodmanHost, install_podman, measure_moves, measure_podman  # noqa: E402
from bench import session  # noqa: E402
from lab import control  # noqa: E402
from tests.lab import pods  # noqa: E402
from tests.support.cleanup import reap_orphans  # noqa: E402

# (label, kind of lab host, kernels, strategies): pre-copy needs soft-dirty tracking, which Debian's
# kernels have and this machine's lacks
LABS = (("QEMU guests, 6.1 <-> 6.12 (TCG)", control.QEMU, ("6.1", "6.12"), ("post-copy", "pre-copy", "stop-and-copy")),
        ("namespace lab hosts, same kernel", control.NAMESPACE, (), ("post-copy", "stop-and-copy")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mib", type=int, default=16)
    parser.add_argument("--no-podman", action="store_true")
    args = parser.parse_args()
    results = {"machine": {"kernel": os.uname().release, "cpus": os.cpu_count()}, "moves": {}, "podman": {}}
    with session.measuring("cross_kernel", session.lab_cleanup) as measured:
        try:
            if not args.no_podman:
                install_podman()
            for label, kind, series, strategies in LABS:
                inventory = session.lab_up(2, kind, series)
                pods.base_rootfs()
                for strategy in strategies:
                    key = "%s, %s" % (label, strategy)
                    results["moves"][key] = measure_moves(inventory, args.mib, strategy, args.runs, "tls")
                    measured.add(key, results["moves"][key])
                    reap_orphans()
                if kind == control.QEMU and not args.no_podman:
                    _measure_podman_in_guest(series[0], args, results, measured)
        finally:
            print_table(results, args.mib)
    return measured.exit_code


def _measure_podman_in_guest(kernel: str, args: argparse.Namespace, results: dict, measured: session.Results) -> None:
    guest = PodmanHost("lab1")
    guest.prepare(pods.base_rootfs())
    for pre_checkpoint in (False, True):
        key = "QEMU guest %s (TCG), Podman %s" % (kernel, PODMAN_METHODS[pre_checkpoint])
        results["podman"][key] = measure_podman(guest, args.mib, args.runs, pre_checkpoint)
        measured.add(key, results["podman"][key])


PODMAN_METHODS = {False: "checkpoint --export + restore --import",
                  True: "--pre-checkpoint, then --with-previous + restore --import-previous"}


def print_table(results: dict, mib: int) -> None:
    print("| %d MiB pod moved between | client's longest pause ms | frozen ms | MiB between hosts | "
          "end-to-end ms (3 Ansible tasks) |" % mib)
    print("|---|---|---|---|---|")
    for label, row in results["moves"].items():
        cells = (label, row["client_pause_ms"], row["frozen_ms"], row["bytes_between_hosts"] / 2**20,
                 row["end_to_end_ms"])
        print("| %s | %.0f | %.0f | %.1f | %.0f |" % cells)
    if results["podman"]:
        print()
        print("| %d MiB container, in place | client's longest pause ms | pre-checkpoint ms | checkpoint ms "
              "| restore ms | archives MiB |" % mib)
        print("|---|---|---|---|---|---|")
        for label, row in results["podman"].items():
            print("| %s | %.0f | %.0f | %.0f | %.0f | %.1f |" % (
                label, row["client_pause_ms"], row["pre_checkpoint_ms"], row["checkpoint_export_ms"],
                row["restore_import_ms"], row["archive_bytes"] / 2**20))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
