# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every package-manager backend answers, and helpers they share."""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError


class Unknown(Exception):
    """A fact the backend could not determine; the result names it and says why."""


@dataclass
class Update:
    name: str
    installed: Optional[str]
    candidate: str
    arch: str
    security: bool
    source: Optional[str] = None
    advisory: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class Backend:
    """A package manager. Methods raise Unknown for a fact they cannot determine and AutopodError
    for a failure the caller must see (a refresh that cannot be done)."""

    name = ""
    lock_files: Tuple[str, ...] = ()

    def present(self) -> bool:
        raise NotImplementedError

    def refresh(self) -> None:
        raise NotImplementedError

    def updates(self) -> List[Update]:
        raise NotImplementedError

    def reboot_reasons(self) -> List[str]:
        """Why the distribution says a reboot is needed (empty when it says none is)."""
        raise NotImplementedError

    def services_needing_restart(self) -> Optional[List[str]]:
        """Services running old code, or None when no tool here can tell."""
        raise NotImplementedError

    def lock_holder(self) -> Optional[str]:
        """Who holds the package database lock, if anybody (asked without taking the lock)."""
        for path in self.lock_files:
            holder = lock_holder(path)
            if holder:
                return holder
        return None

    def ensure_unlocked(self, action: str) -> None:
        holder = self.lock_holder()
        if holder:
            raise AutopodError("cannot %s: the %s package database is locked by %s; another package manager is "
                               "running, try again when it has finished" % (action, self.name, holder))


def lock_holder(path: str) -> Optional[str]:
    """'PID n (command)' of a process holding a POSIX write lock on `path`, via F_GETLK."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        query = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
    except OSError:
        return None
    finally:
        os.close(fd)
    kind, _whence, _start, _length, pid = struct.unpack("hhqqi4x", answer)
    if kind == fcntl.F_UNLCK:
        return None
    if pid == 0:  # the kernel reports 0 for a holder outside our PID namespace
        return "a process outside this host's PID namespace"
    try:
        with open("/proc/%d/comm" % pid) as comm:
            return "PID %d (%s)" % (pid, comm.read().strip())
    except OSError:
        return "PID %d" % pid
