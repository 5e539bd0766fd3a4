# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-pod supervisor: the parent that waits for a pod and records how it ended.

A module exits as soon as it has started a pod, so somebody else must reap the
pod's first process (Podman's conmon plays this part). The supervisor is a
daemon forked from the module: it becomes a child subreaper, starts the pod
(directly, or by running `criu restore --restore-detached`, whose restored tree
is reparented to it), reports the pod's PID back to the module over a pipe,
then waits and writes the exit status to the pod's exit.json.

It is forked, not exec'd: the module's code is already in memory, and the module's
temporary files may be deleted as soon as the module returns.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Dict, Optional

from ansible_collections.autopod.autopod.plugins.module_utils import linux
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.store import write_private_json


def _exit_record(pid: int, start_time: int, status: int) -> Dict[str, Any]:
    record: Dict[str, Any] = {"init_pid": pid, "init_start_time": start_time, "ended_at": time.time(),
                              "boot_id": linux.boot_id()}
    if os.WIFSIGNALED(status):
        record["signal"] = os.WTERMSIG(status)
    else:
        record["exit_code"] = os.WEXITSTATUS(status)
    return record


def _log(message: str) -> None:
    os.write(1, (time.strftime("%Y-%m-%d %H:%M:%S ") + message + "\n").encode())


def _supervise(report_fd: int, start: Callable[[], int], log_path: str, exit_path: str,
               after_report: Optional[Callable[[], object]]) -> None:
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    try:
        init_pid = start()
        # A first process that has already ended is still ours to reap, and its start time is still there:
        # the pod was created, and the loop below records how it ended (on a busy host a command that fails
        # at once, say, often ends before this line runs).
        start_time = linux.process_start_time(init_pid, ended_too=True)
        if start_time is None:
            raise AutopodError("the pod's first process (PID %d) exited right after it started" % init_pid)
    except Exception as exc:  # every failure goes back to the module, which reports it
        os.write(report_fd, json.dumps({"error": str(exc)}).encode())
        os._exit(1)
    os.write(report_fd, json.dumps({"supervisor_pid": os.getpid(), "init_pid": init_pid,
                                    "init_start_time": start_time}).encode())
    os.close(report_fd)
    _log("supervising PID %d" % init_pid)
    if after_report:
        try:
            after_report()
        except Exception as exc:  # the pod runs; a failed follow-up is logged, not fatal
            _log("after start: %s" % exc)
    while True:
        pid, status = os.waitpid(-1, 0)  # also reaps anything else reparented to us
        if pid == init_pid:
            record = _exit_record(init_pid, start_time, status)
            write_private_json(exit_path, record)
            _log("PID %d ended: %s" % (init_pid, record))
            os._exit(0)


def spawn(start: Callable[[], int], log_path: str, exit_path: str,
          after_report: Optional[Callable[[], object]] = None) -> Dict[str, int]:
    """Fork a supervisor that runs `start()` and supervises the PID it returns.

    `after_report` runs in the supervisor once the module has its answer: work the
    pod needs soon but the module need not wait for.

    Returns {"supervisor_pid", "init_pid", "init_start_time"} or raises AutopodError
    with the message the supervisor reported.
    """
    data = linux.daemonize(lambda report_fd: _supervise(report_fd, start, log_path, exit_path, after_report),
                           log_path)
    report = json.loads(data) if data else {"error": "the supervisor died before it reported (see %s)" % log_path}
    if "error" in report:
        raise AutopodError(report["error"])
    return report
