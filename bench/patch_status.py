"""Benchmark: what a patch_status call (no refresh) costs the host it runs on.

Runs the module's check through Ansible on this machine (median of RUNS), and the same check in-process
to separate the host's CPU time (the module's own and its children's: apt, needrestart) from wall time.
Run as root after scripts/setup.sh:  .venv/bin/python bench/patch_status.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from ansible_collections.autopod.autopod.plugins.module_utils.patch_status import check  # noqa: E402
from tests.support.ansible_cli import module  # noqa: E402


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    walls, cpus, module_ms, ansible_ms = [], [], [], []
    last = {}
    for _run in range(args.runs):
        start, cpu = time.monotonic(), cpu_seconds()
        last = check("auto", "security", False, [], None, check_mode=True)
        walls.append((time.monotonic() - start) * 1000)
        cpus.append((cpu_seconds() - cpu) * 1000)
        start = time.monotonic()
        through = module("patch_status", {})
        ansible_ms.append((time.monotonic() - start) * 1000)
        module_ms.append(through["duration_ms"])
    result = {"machine": {"kernel": os.uname().release, "cpus": os.cpu_count()},
              "package_manager": last["package_manager"], "pending_updates": last["updates_count"],
              "runs": args.runs,
              "median_wall_ms": round(statistics.median(walls), 1),
              "median_host_cpu_ms": round(statistics.median(cpus), 1),
              "median_module_duration_ms": round(statistics.median(module_ms), 1),
              "median_ansible_call_ms": round(statistics.median(ansible_ms), 1)}
    print("| package manager | pending updates | wall ms | host CPU ms | module duration ms | ansible call ms |")
    print("|---|---|---|---|---|---|")
    print("| %(package_manager)s | %(pending_updates)s | %(median_wall_ms).0f | %(median_host_cpu_ms).0f | "
          "%(median_module_duration_ms).0f | %(median_ansible_call_ms).0f |" % result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
