# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place external tools are run: argument lists only, never a shell, in the C locale.

`run` waits for a command and captures its output; `start` leaves it running (CRIU's page
servers and lazy-pages daemons) with its output discarded, since those tools log to files.
Both take the descriptors the command must inherit and, for tools that write process memory
to disk, a private umask.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Sequence


@dataclass
class Result:
    argv: Sequence[str]
    rc: int
    out: str
    err: str

    def brief(self) -> str:
        text = (self.err or self.out).strip().splitlines()
        return "`%s` exited %d: %s" % (" ".join(self.argv), self.rc, text[-1] if text else "no output")


class CommandTimeout(Exception):
    """The command did not finish in time and was killed."""


@contextlib.contextmanager
def private_umask(private: bool = True) -> Iterator[None]:
    """Files a command creates are for root only (checkpoint images hold process memory)."""
    old = os.umask(0o077) if private else None
    try:
        yield
    finally:
        if old is not None:
            os.umask(old)


def _environment(env: Optional[Dict[str, str]]) -> Dict[str, str]:
    environment = dict(os.environ)
    environment.update({"LC_ALL": "C", "LANG": "C"})
    environment.update(env or {})
    return environment


def run(argv: Sequence[str], env: Optional[Dict[str, str]] = None, timeout: Optional[float] = None,
        pass_fds: Sequence[int] = (), private: bool = False, merge_output: bool = False) -> Result:
    """Run a command and capture its output. A missing program gives rc 127, like a shell would;
    one that outlives `timeout` is killed and raises CommandTimeout."""
    try:
        with private_umask(private):
            proc = subprocess.run(list(argv), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
                                  universal_newlines=True, env=_environment(env), timeout=timeout, check=False,
                                  pass_fds=tuple(pass_fds), stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        return Result(argv, 127, "", str(exc))
    except subprocess.TimeoutExpired:
        raise CommandTimeout("`%s` did not finish within %s seconds" % (argv[0], timeout))
    return Result(argv, proc.returncode, proc.stdout, proc.stderr or "")


Process = subprocess.Popen  # what start() returns


def start(argv: Sequence[str], env: Optional[Dict[str, str]] = None, pass_fds: Sequence[int] = (),
          private: bool = False) -> "Process[bytes]":
    """Start a command that keeps running; its output goes nowhere (the tools this is for log to files)."""
    with private_umask(private):
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=_environment(env), pass_fds=tuple(pass_fds))


def wait(process: "Process[bytes]", timeout: float) -> Optional[int]:
    """The exit code of a started command, or None while it still runs after `timeout` seconds.

    Waits on a pidfd, which wakes the moment the command ends: `Popen.wait` with a timeout polls with
    sleeps that grow to 50 ms, and the restore a move waits for ends about 60 ms into it, so the poll
    added up to 50 ms to the pod's frozen time. Kernels before 5.3 have no pidfd: there it polls."""
    if process.returncode is not None:
        return process.returncode
    try:
        pidfd = os.pidfd_open(process.pid)
    except OSError:
        return _poll_until(process, timeout)
    try:
        select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    return process.poll()


def _poll_until(process: "Process[bytes]", timeout: float) -> Optional[int]:
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        return None
