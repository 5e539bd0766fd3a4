"""Benchmark: one `ansible-playbook playbooks/move_pod.yml` end to end, as a user runs it.

Two lab hosts, a counter pod (16 MiB by default) with a client on the lab's client host reading its
stream. The pod moves lab1 -> lab2 -> lab1 ... RUNS times after one warm-up move, for each way of
waiting on the move (`pod_move_poll`: 1, the move in the background, checked every second; 0, waiting
on the SSH connection, the default for pods under 1 GiB), and then waiting on the connection under Mitogen's
strategy (README, "Faster runs with Mitogen"). Medians of: the playbook's wall time (the process, start to exit), the
frozen time pod_migrate reports, and the longest pause the client saw; and where the rest of the time
goes: the move itself (pod_receive plus pod_migrate) against Ansible's own work (start-up, SSH, the
role's other tasks), from the ansible.posix.json callback's task times.

Run as root after scripts/setup.sh:  .venv/bin/python bench/move_pod.py [--runs 5] [--mib 16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from bench import session  # noqa: E402
from tests.lab import pods  # noqa: E402
from tests.support.ansible_cli import mitogen_strategy  # noqa: E402

POD, OFFSET = "bench-move", 50
MOVE_TASKS = ("Prepare the destination", "Move the pod")


def move(inventory: str, source: str, destination: str, poll: int, strategy: Optional[dict]) -> dict:
    started = time.monotonic()
    played = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", inventory,
                             os.path.join(ROOT, "playbooks", "move_pod.yml"),
                             "-e", json.dumps({"pod": POD, "from": source, "to": destination,
                                               "pod_move_poll": poll})],
                            cwd=ROOT, env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
                                               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", **(strategy or {})),
                            stdout=subprocess.PIPE, text=True, check=True)
    wall = time.monotonic() - started
    moving, frozen = 0.0, None
    for play in json.loads(played.stdout)["plays"]:
        for task in play["tasks"]:
            if session.task_name(task) in MOVE_TASKS and "end" in task["task"]["duration"]:
                moving += session.task_seconds(task)
            for result in task["hosts"].values():
                frozen = result.get("frozen_ms", frozen) if isinstance(result, dict) else frozen
    return {"wall_s": wall, "move_s": moving, "ansible_s": wall - moving, "frozen_ms": frozen}


def one_way_of_waiting(inventory: str, way: str, poll: int, strategy: Optional[dict], runs: int,
                       measured: session.Results) -> dict:
    watcher = pods.client(OFFSET)
    watcher.wait_lines(10)
    hosts = ["lab1", "lab2"]
    move(inventory, hosts[0], hosts[1], poll, strategy)  # warm-up: SSH masters, page cache
    hosts.reverse()
    rows = []
    for _run in range(runs):
        watcher.reset_pause_clock()
        row = move(inventory, hosts[0], hosts[1], poll, strategy)
        watcher.wait_lines(5)
        report = watcher.report()
        assert report["error"] is None and not report["gaps"], report
        row["client_pause_ms"] = report["max_pause_ms"]
        rows.append(row)
        hosts.reverse()
    watcher.close()
    summary = {key: round(statistics.median(r[key] for r in rows if r[key] is not None), 2)
               for key in ("wall_s", "move_s", "ansible_s", "frozen_ms", "client_pause_ms")}
    measured.add(way, summary)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mib", type=int, default=16)
    options = parser.parse_args()
    results = {"machine": {"kernel": os.uname().release, "cpus": os.cpu_count()}, "mib": options.mib, "rows": {}}
    with session.measuring("move_pod", session.lab_cleanup) as measured:
        try:
            inventory = session.lab_up(2)
            pods.place(inventory, "lab1", POD, OFFSET, mib=options.mib)
            # under Mitogen only on the connection: pod_move refuses a move in the background there (it would hang)
            for poll, strategy, under in ((1, None, ""), (0, None, ""), (0, mitogen_strategy(), " under Mitogen")):
                way = "pod_move_poll=%d%s" % (poll, under)
                results["rows"][way] = one_way_of_waiting(inventory, way, poll, strategy, options.runs, measured)
        finally:
            print_table(results)
    return measured.exit_code


def print_table(results: dict) -> None:
    print("| move_pod.yml, %d MiB pod | end to end s | the move (pod_receive + pod_migrate) s | Ansible's own s "
          "| frozen ms | client's longest pause ms |" % results["mib"])
    print("|---|---|---|---|---|---|")
    for way, row in results["rows"].items():
        print("| %s | %.2f | %.2f | %.2f | %.0f | %.0f |" % (
            way, row["wall_s"], row["move_s"], row["ansible_s"], row["frozen_ms"], row["client_pause_ms"]))


if __name__ == "__main__":
    sys.exit(main())
