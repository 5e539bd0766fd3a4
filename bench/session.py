"""What every benchmark shares: each result is printed and written to a file the moment it is measured,
and the cleanup runs last and is reported after the results, never instead of them.

    with session.measuring("migration", session.lab_cleanup) as results:
        inventory = session.lab_up(2)
        results.add("16 MiB post-copy", {...})   # printed now, and appended to the results file
    sys.exit(results.exit_code)

A benchmark that fails half-way still has its measured rows in the file (one JSON object per line,
/var/tmp/autopod-bench-results/<name>.jsonl by default), and its traceback is printed after them.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
import traceback
from typing import Callable, Dict, Iterator, List, Optional, Sequence

from lab import control
from tests.support.cleanup import adopt_orphans, reap_orphans

RESULTS_DIR = "/var/tmp/autopod-bench-results"


class Results:
    """The rows measured so far, in memory and in a JSON-lines file."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        self.rows: List[Dict[str, object]] = []
        self.failed = False
        self._file = open(path, "w")

    def add(self, case: str, row: Dict[str, object]) -> None:
        entry = dict(row, case=case)
        self.rows.append(entry)
        print(case, json.dumps(row), flush=True)
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def seconds_between(start: str, end: str) -> float:
    """Seconds between two ISO timestamps, as the ansible.posix.json callback writes them."""
    return (datetime.datetime.fromisoformat(end) - datetime.datetime.fromisoformat(start)).total_seconds()


def task_seconds(task: dict) -> float:
    """A task's wall time, from the ansible.posix.json callback's record of it."""
    return seconds_between(task["task"]["duration"]["start"], task["task"]["duration"]["end"])


def task_name(task: dict) -> str:
    """A task's name as the role writes it: without the role's prefix, nor the details after " | "."""
    return task["task"]["name"].split(" : ")[-1].split(" | ")[0]


def require_root() -> None:
    if os.geteuid() != 0:
        sys.exit("run as root")


def lab_up(hosts: int, kind: str = control.NAMESPACE, kernel_series: Sequence[str] = ()) -> str:
    """A fresh lab (whatever an earlier run left is removed first); returns its inventory."""
    require_root()
    adopt_orphans()
    control.down()
    return control.up(hosts, kind, kernel_series)


def lab_cleanup() -> None:
    control.down()
    reap_orphans()


@contextlib.contextmanager
def measuring(name: str, cleanup: Callable[[], None], out: Optional[str] = None) -> Iterator[Results]:
    """Run a benchmark's body: a failure in it is printed and makes the exit code 1, the results
    measured before it stay; then `cleanup` runs, and a failure there is printed after everything."""
    results = Results(out or os.path.join(RESULTS_DIR, name + ".jsonl"))
    try:
        yield results
    except Exception:  # the rows measured so far are printed and on file; say what stopped the rest
        traceback.print_exc()
        results.failed = True
    finally:
        results.close()
        print("results: %s" % results.path, flush=True)
        try:
            cleanup()
        except Exception:
            print("cleanup failed (the results above stand):\n" + traceback.format_exc(), file=sys.stderr)
            results.failed = True
