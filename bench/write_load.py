"""Benchmark: a move's freeze and the clients' longest wait when the pod keeps writing its memory.

The workload is the counter with its writer on: it writes its memory over and over (WRITE MiB/s, each word
written back with its own value, so every page it passes is dirty again), the way a busy cache does. Four
request/response clients on the lab's client host each keep one request in flight (workloads/ping_client.py:
"ping", answered at once with the counter); a stream client reads the pod's stream and, after every move, has
the pod recompute its memory ("verify"). Cases (issue 15's targets in brackets):

  256 MiB writing 200 MiB/s, strategies auto, post-copy, stop-and-copy  [frozen <= 150 ms, worst wait <= 200 ms]
  16 MiB, idle memory, auto                                             [worst wait <= 100 ms]

Each case: a warm-up move, then RUNS moves lab1 <-> lab2 (pod_receive then pod_migrate, copy storage, images on
tmpfs, TLS). Every move's row is printed as it is measured: the frozen time and its phases (pod_migrate's
frozen_phases_ms), the clients' longest wait over the move, pod_migrate's own time (until every page is across;
bench/move_pod.py times a whole move_pod.yml). Then medians and maxima.

Run as root after scripts/setup.sh:  .venv/bin/python bench/write_load.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from bench import session  # noqa: E402
from tests.lab import pods  # noqa: E402

# (MiB, MiB/s written, strategy)
CASES = [(256, 200, "auto"), (256, 200, "post-copy"), (256, 200, "stop-and-copy"), (16, 0, "auto")]
HOSTS = ["lab1", "lab2"]
OFFSET = 12


def case_name(mib: int, write: int, strategy: str) -> str:
    return "%d MiB writing %d MiB/s, %s" % (mib, write, strategy)


def _settle(clients, watcher) -> None:
    """Wait until the clients have been answered again (the requests in flight before it are done)."""
    clients.wait_requests(40, timeout=120)
    watcher.wait_lines(10, timeout=120)


def one_case(inventory: str, mib: int, write: int, strategy: str, runs: int, measured: session.Results) -> list:
    name = "bench-w%d-%d-%s" % (write, mib, strategy.split("-")[0])
    pods.place(inventory, HOSTS[0], name, OFFSET, mib=mib, write_mib_s=write)
    watcher, clients, rows = pods.client(OFFSET), None, []
    try:
        watcher.wait_lines(10, timeout=120)
        clients = pods.ping_client(OFFSET)
        here, there = HOSTS
        for attempt in range(runs + 1):
            _settle(clients, watcher)
            watcher.reset_pause_clock()
            started = time.monotonic()
            moved = pods.move(inventory, name, here, there, strategy=strategy)
            assert moved.get("changed"), moved
            clients.wait_requests(40, timeout=120)
            longest_wait_ms = clients.longest_wait(started) * 1000
            verdict, report = watcher.verify(timeout=120), watcher.report()
            assert verdict.startswith("verify ok") and not report["gaps"] and not report["error"], (verdict, report)
            assert not clients.errors(), clients.errors()
            here, there = there, here
            if attempt:  # the first move warms the hosts' memory up
                row = {"strategy": moved["strategy"], "frozen_ms": moved["frozen_ms"],
                       "longest_wait_ms": round(longest_wait_ms, 1), "stream_pause_ms": report["max_pause_ms"],
                       "migrate_ms": moved["timings"]["total_ms"], "phases_ms": moved.get("frozen_phases_ms", {})}
                measured.add(case_name(mib, write, strategy), row)
                rows.append(row)
    finally:
        if clients is not None:
            clients.stop()
            clients.close()
        watcher.close()
        pods.remove_everywhere(inventory, HOSTS)
    return rows


def summary(rows: list) -> dict:
    frozen = [r["frozen_ms"] for r in rows]
    waits = [r["longest_wait_ms"] for r in rows]
    phases = sorted({phase for r in rows for phase in r["phases_ms"]})
    return {"strategy": rows[0]["strategy"] if rows else "-", "runs": len(rows),
            "frozen_ms": (statistics.median(frozen), max(frozen)) if rows else None,
            "longest_wait_ms": (statistics.median(waits), max(waits)) if rows else None,
            "migrate_ms": statistics.median(r["migrate_ms"] for r in rows) if rows else None,
            "phases_ms": {p: statistics.median(r["phases_ms"].get(p, 0) for r in rows) for p in phases}}


def print_table(results: dict) -> None:
    print("| case | chosen | frozen ms median (max) | clients' longest wait ms median (max) | pod_migrate ms "
          "| frozen phases ms (medians) |")
    print("|---|---|---|---|---|---|")
    for case, s in results.items():
        if not s["runs"]:
            print("| %s | - | - | - | - | not measured |" % case)
            continue
        print("| %s | %s | %.0f (%.0f) | %.0f (%.0f) | %.0f | %s |" % (
            case, s["strategy"], *s["frozen_ms"], *s["longest_wait_ms"], s["migrate_ms"],
            ", ".join("%s %.0f" % item for item in s["phases_ms"].items())))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    results: dict = {}
    with session.measuring("write_load", session.lab_cleanup) as measured:
        try:
            inventory = session.lab_up(len(HOSTS))
            pods.base_rootfs()
            for mib, write, strategy in CASES:
                results[case_name(mib, write, strategy)] = summary(one_case(inventory, mib, write, strategy, runs, measured))
        finally:
            print_table(results)
            print(json.dumps({"machine": {"kernel": os.uname().release, "cpus": os.cpu_count()},
                              "cases": results}, indent=1))
    return measured.exit_code


if __name__ == "__main__":
    sys.exit(main())
