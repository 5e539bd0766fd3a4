"""Benchmark: a move across kernels (QEMU guests on Debian's 6.1 and 6.12) next to the same move
between namespace lab hosts, so that the cost of emulation is not mistaken for the cost of the method.

The same measurement as bench/migration.py (its measure_moves): a 16 MiB counter pod moves
lab1 -> lab2 -> lab1 ... RUNS times after a warm-up move, copy storage, images on tmpfs, a client on
the lab's client host checking every line; medians of the client's longest pause, the frozen time,
bytes between hosts and the end-to-end time through Ansible. On the guests every move crosses
kernels (6.1 <-> 6.12), and everything in them (CRIU, Python, Ansible's modules) runs under TCG.

Run as root after scripts/setup.sh:  .venv/bin/python bench/cross_kernel.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from bench.migration import measure_moves  # noqa: E402
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
    args = parser.parse_args()
    results = {"machine": {"kernel": os.uname().release, "cpus": os.cpu_count()}, "moves": {}}
    with session.measuring("cross_kernel", session.lab_cleanup) as measured:
        try:
            for label, kind, series, strategies in LABS:
                inventory = session.lab_up(2, kind, series)
                pods.base_rootfs()
                for strategy in strategies:
                    key = "%s, %s" % (label, strategy)
                    results["moves"][key] = measure_moves(inventory, args.mib, strategy, args.runs)
                    measured.add(key, results["moves"][key])
                    reap_orphans()
        finally:
            print_table(results, args.mib)
    return measured.exit_code


def print_table(results: dict, mib: int) -> None:
    print("| %d MiB pod moved between | client's longest pause ms | frozen ms | MiB between hosts | "
          "end-to-end ms (3 Ansible tasks) |" % mib)
    print("|---|---|---|---|---|")
    for label, row in results["moves"].items():
        cells = (label, row["client_pause_ms"], row["frozen_ms"], row["bytes_between_hosts"] / 2**20,
                 row["end_to_end_ms"])
        print("| %s | %.0f | %.0f | %.1f | %.0f |" % cells)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
