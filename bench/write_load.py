"""Benchmark: a move's freeze and the clients' longest wait when the pod keeps writing its memory.

The workload is the counter with its writer on: it writes its memory over and over (WRITE MiB/s, each word
written back with its own value, so every page it passes is dirty again), the way a busy cache does. Four
request/response clients on the lab's client host each keep one request in flight (workloads/ping_client.py:
"ping", answered at once with the counter); a stream client reads the pod's stream and, after every move, has
the pod recompute its memory ("verify"). Real services in the same table: Debian's Redis and PostgreSQL, each
in its own pod, four clients keeping requests in flight (Redis SETs; PostgreSQL INSERTs, each committed), every
acknowledged write read back after the last move. Cases (issue 15's targets in brackets):

  256 MiB writing 200 MiB/s, strategies auto, post-copy, stop-and-copy  [frozen <= 150 ms, worst wait <= 200 ms]
  16 MiB, idle memory, auto                                             [worst wait <= 100 ms]
  Redis, PostgreSQL under their writers, auto

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
from typing import Dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from bench import session  # noqa: E402
from tests.lab import pods  # noqa: E402

HOSTS = ["lab1", "lab2"]
OFFSET = 12


class _Load:
    """What every workload has: request/response clients (None until it has started), stopped at the end."""

    clients = None

    def close(self) -> None:
        if self.clients is not None:
            self.clients.stop()
            self.clients.close()


class CounterLoad(_Load):
    """The counter pod writing `write` MiB/s over its `mib` MiB; four ping clients, and a stream client that
    has the pod recompute its memory after every move."""

    def __init__(self, mib: int, write: int, strategy: str) -> None:
        self.mib, self.write, self.strategy = mib, write, strategy
        self.name = "%d MiB writing %d MiB/s, %s" % (mib, write, strategy)
        self.pod = "bench-w%d-%d-%s" % (write, mib, strategy.split("-")[0])
        self.watcher = None

    def start(self, inventory: str) -> None:
        pods.place(inventory, HOSTS[0], self.pod, OFFSET, mib=self.mib, write_mib_s=self.write)
        self.watcher = pods.client(OFFSET)
        self.watcher.wait_lines(10, timeout=120)
        self.clients = pods.ping_client(OFFSET)

    def settle(self) -> None:
        """Wait until the clients have been answered again (the requests in flight before it are done)."""
        self.clients.wait_requests(40, timeout=120)
        self.watcher.wait_lines(10, timeout=120)
        self.watcher.reset_pause_clock()

    def check_move(self) -> Dict[str, float]:
        verdict, report = self.watcher.verify(timeout=120), self.watcher.report()
        assert verdict.startswith("verify ok") and not report["gaps"] and not report["error"], (verdict, report)
        return {"stream_pause_ms": report["max_pause_ms"]}

    def check_end(self) -> None:
        """The stream client has checked the pod's memory after every move."""

    def close(self) -> None:
        super().close()
        if self.watcher is not None:
            self.watcher.close()


class ServiceLoad(_Load):
    """Debian's Redis or PostgreSQL in a pod with four clients keeping requests in flight (Redis SETs,
    PostgreSQL INSERTs each committed); at the end every acknowledged write must read back."""

    def __init__(self, service: str) -> None:
        self.service, self.strategy = service, "auto"
        self.name = "%s, four writers, auto" % service
        self.pod = "bench-w-" + service

    def start(self, inventory: str) -> None:
        pods.place_service(inventory, HOSTS[0], self.service, self.pod, OFFSET)
        self.clients = pods.service_client(self.service, OFFSET)

    def settle(self) -> None:
        self.clients.wait_requests(40, timeout=120)

    def check_move(self) -> Dict[str, float]:
        return {}

    def check_end(self) -> None:
        self.clients.stop()
        lost = self.clients.lost()
        assert not lost, "%d acknowledged writes lost, the first %s" % (len(lost), lost[:5])


CASES = [CounterLoad(256, 200, "auto"), CounterLoad(256, 200, "post-copy"), CounterLoad(256, 200, "stop-and-copy"),
         CounterLoad(16, 0, "auto"), ServiceLoad("redis"), ServiceLoad("postgres")]


def one_case(inventory: str, load, runs: int, measured: session.Results) -> list:
    rows = []
    try:
        load.start(inventory)
        here, there = HOSTS
        for attempt in range(runs + 1):
            load.settle()
            started = time.monotonic()
            moved = pods.move(inventory, load.pod, here, there, strategy=load.strategy)
            assert moved.get("changed"), moved
            load.clients.wait_requests(40, timeout=120)
            longest_wait_ms = load.clients.longest_wait(started) * 1000
            checked = load.check_move()
            assert not load.clients.errors(), load.clients.errors()
            here, there = there, here
            if attempt:  # the first move warms the hosts' memory up
                row = {"strategy": moved["strategy"], "frozen_ms": moved["frozen_ms"],
                       "longest_wait_ms": round(longest_wait_ms, 1), "migrate_ms": moved["timings"]["total_ms"],
                       "phases_ms": moved.get("frozen_phases_ms", {}), **checked}
                measured.add(load.name, row)
                rows.append(row)
        load.check_end()
    finally:
        load.close()
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
            for load in CASES:
                results[load.name] = summary(one_case(inventory, load, runs, measured))
        finally:
            print_table(results)
            print(json.dumps({"machine": {"kernel": os.uname().release, "cpus": os.cpu_count()},
                              "cases": results}, indent=1))
    return measured.exit_code


if __name__ == "__main__":
    sys.exit(main())
