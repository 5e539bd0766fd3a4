"""Benchmark: how the time of peer placement (plugin_utils/placement.py) grows with the fleet.

A synthetic fleet: every host has 8-64 GiB of memory and 50-500 GiB of disk free, five pods per host of
16 MiB-4 GiB of memory and 0-8 GiB of disk, one CPU and CRIU class. For each fleet size it times
  - one batch: the placement of the pods of 10 % of the hosts (serial: 10 %), as a rolling patch asks it;
  - a whole rollout: every batch in turn (so every pod of the fleet is placed once), the peers' free
    figures taken afresh for each batch, as pod_info reports them in a real run.
Times are wall clock on this machine, the best of RUNS.

Run:  .venv/bin/python bench/placement.py [--hosts 100,1000,10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from typing import List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from bench import session  # noqa: E402
from ansible_collections.autopod.autopod.plugins.plugin_utils.placement import Host, Pod, place  # noqa: E402

PODS_PER_HOST = 5
BATCH_FRACTION = 10  # one host in ten per batch


def fleet(count: int, seed: int = 7) -> Tuple[List[Host], List[Pod]]:
    rng = random.Random(seed)
    hosts = [Host("h%d" % i, rng.randint(8, 64) << 30, rng.randint(50, 500) << 30, frozenset({"fpu"}), (4, 2))
             for i in range(count)]
    pods = [Pod("p%d" % i, "h%d" % (i % count), rng.randint(16, 4096) << 20, rng.randint(0, 8) << 30)
            for i in range(count * PODS_PER_HOST)]
    return hosts, pods


def batches(count: int) -> List[List[str]]:
    return [["h%d" % i for i in range(start, count, BATCH_FRACTION)] for start in range(BATCH_FRACTION)]


def best_of(runs: int, work) -> Tuple[float, object]:
    best, outcome = float("inf"), None
    for _run in range(runs):
        started = time.perf_counter()
        outcome = work()
        best = min(best, time.perf_counter() - started)
    return best, outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--hosts", default="100,1000,10000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with session.measuring("placement", lambda: None) as measured:
        try:
            for count in (int(n) for n in args.hosts.split(",")):
                hosts, pods = fleet(count)
                one, plan = best_of(args.runs, lambda: place(hosts, pods, batches(count)[0]))
                whole, plans = best_of(args.runs, lambda: [place(hosts, pods, b) for b in batches(count)])
                row = {"hosts": count, "pods": len(pods), "one_batch_pods": len(plan.peers) + len(plan.unplaced),
                       "one_batch_ms": round(one * 1000, 1), "whole_rollout_ms": round(whole * 1000, 1),
                       "unplaced": sum(len(p.unplaced) for p in plans)}
                rows.append(row)
                measured.add("%d hosts" % count, row)
        finally:
            print("\nmachine: kernel %s, %d CPUs, Python %s\n" % (os.uname().release, os.cpu_count(),
                                                                  sys.version.split()[0]))
            print("| hosts | pods | pods in one batch (10 %) | one batch ms | whole rollout (every pod placed) ms |")
            print("|---|---|---|---|---|")
            for r in rows:
                cells = (r["hosts"], r["pods"], r["one_batch_pods"], r["one_batch_ms"], r["whole_rollout_ms"])
                print("| %d | %d | %d | %.1f | %.1f |" % cells)
    return measured.exit_code


if __name__ == "__main__":
    sys.exit(main())
