"""Soak: move real services back and forth between two lab hosts many times, under load, and count.

Redis (four writers whose SETs are always in flight), PostgreSQL (four connections committing
INSERTs), nginx (four HTTP/1.1 keep-alive clients whose every reply is checked), each from Debian's
packages in its own pod, each moved N times (default 200) between lab1 and lab2, every fourth move
stop-and-copy and the others post-copy. It prints, per service: client errors (a reset included),
writes or transactions lost, the client's longest wait per move (p50, p99, max), and the frozen time
per move split by phase (dump, transfer, restore, network and resume), as medians.

Every finished move is appended to a JSON-lines file as soon as it is measured (--out), and the
summary is printed before the lab is taken down; a failing cleanup is reported after it.

Run as root after scripts/setup.sh:  .venv/bin/python bench/soak.py [--moves 200] [--services redis,postgres,nginx]
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

HOSTS = ("lab1", "lab2")
OFFSETS = {"redis": 60, "postgres": 61, "nginx": 62}


def soak(inventory: str, service: str, moves: int, measured: session.Results) -> dict:
    name = "soak-" + service
    definition = pods.place_service(inventory, HOSTS[0], service, name, OFFSETS[service])["pod"]["definition"]
    client = pods.service_client(service, OFFSETS[service])
    waits, frozen, by_phase, failures = [], [], [], []
    try:
        client.wait_requests(100, timeout=60)
        for number in range(moves):
            source, destination = HOSTS[number % 2], HOSTS[(number + 1) % 2]
            strategy = "stop-and-copy" if number % 4 == 3 else "post-copy"
            started = time.monotonic()
            moved = pods.move(inventory, name, source, destination, strategy=strategy, definition=definition)
            try:
                client.wait_requests(50, timeout=60)
            except (ConnectionError, TimeoutError) as exc:
                failures.append("move %d: %s" % (number, exc))
            wait = round(client.longest_wait(started) * 1000, 1)
            row = {"service": service, "move": number, "strategy": strategy, "result": moved.get("result"),
                   "client_longest_wait_ms": wait, "frozen_ms": moved.get("frozen_ms"), "phases_ms": pods.frozen_phases(moved),
                   "errors": client.errors(), "msg": moved.get("msg")}
            measured.add("%s move %d" % (service, number), row)
            if moved.get("result") != "moved" or client.errors():
                failures.append("move %d: %s; %s" % (number, moved.get("msg"), client.errors()))
                break
            waits.append(wait)
            frozen.append(moved["frozen_ms"])
            by_phase.append(row["phases_ms"])
        client.stop()
        lost = len(client.lost()) if not client.errors() else None
    finally:
        client.close()
    return summary(service, waits, frozen, by_phase, failures, lost, client.report())


def _percentile(values: list, fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))] if ordered else 0


def summary(service: str, waits: list, frozen: list, by_phase: list, failures: list, lost, report: dict) -> dict:
    return {"service": service, "moves": len(waits), "failures": failures, "client_errors": report["errors"],
            "lost": lost, "requests": report["requests"],
            "client_wait_ms": {"p50": _percentile(waits, .5), "p99": _percentile(waits, .99), "max": max(waits or [0])},
            "frozen_ms_median": statistics.median(frozen) if frozen else None,
            "phases_ms_median": {k: round(statistics.median(p[k] for p in by_phase), 1)
                                 for k in (by_phase[0] if by_phase else {})}}


def print_table(results: list) -> None:
    print("| service | moves | client errors (resets included) | lost | client's longest wait per move p50 / p99 / "
          "max ms | frozen ms (median) | dump / transfer / restore / network+resume ms (medians) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        p = r["phases_ms_median"]
        print("| %s | %d | %d | %s | %.0f / %.0f / %.0f | %s | %s |" % (
            r["service"], r["moves"], len(r["client_errors"]) + len(r["failures"]), r["lost"],
            r["client_wait_ms"]["p50"], r["client_wait_ms"]["p99"], r["client_wait_ms"]["max"], r["frozen_ms_median"],
            " / ".join("%.0f" % p[k] for k in ("dump", "transfer", "restore", "network_and_resume")) if p else "-"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--services", default="redis,postgres,nginx")
    parser.add_argument("--out", help="every move, as it is measured (default: %s/soak.jsonl)" % session.RESULTS_DIR)
    args = parser.parse_args()
    results = []
    with session.measuring("soak", session.lab_cleanup, args.out) as measured:
        try:
            inventory = session.lab_up(len(HOSTS))
            for service in args.services.split(","):
                results.append(soak(inventory, service, args.moves, measured))
                print_table(results[-1:])
                pods.remove_everywhere(inventory, list(HOSTS))
        finally:
            print("\nmachine: kernel %s, %d CPUs; moves of %s\n" % (os.uname().release, os.cpu_count(), args.services))
            print_table(results)
            print(json.dumps(results, indent=1))
    clean = results and all(not r["failures"] and not r["client_errors"] and r["lost"] == 0 for r in results)
    return 0 if clean and not measured.failed else 1


if __name__ == "__main__":
    sys.exit(main())
