# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The maintenance lock of a host: who is working on it, since when, until when, in which phase.

Kept on the host itself (state on the hosts, not on the controller, because AWX execution
environments keep nothing between jobs), like kured's lock annotation: a rolling patch takes it
before touching a host and gives it back when done, so two runs never work on the same host. A
lock whose run died expires; until then another run waits for it or refuses.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from typing import Any, Dict, Optional

from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.store import make_private_dir, write_private_json

LOCK_FILE = "maintenance.json"
POLL_SECONDS = 2.0


def _now() -> float:
    return time.time()


def _describe(lock: Dict[str, Any]) -> str:
    return "%s (since %s, phase %s, expires %s)" % (
        lock.get("owner"), time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(lock.get("acquired_at", 0))),
        lock.get("phase"), time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(lock.get("expires_at", 0))))


class MaintenanceLock:
    def __init__(self, state_dir: str, check_mode: bool = False) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, LOCK_FILE)
        self.check_mode = check_mode

    def _read(self) -> Optional[Dict[str, Any]]:
        try:
            with open(self.path) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def _guarded(self, action):
        """Run `action(current)` while holding an flock, so that two runs deciding at once see each other."""
        make_private_dir(self.state_dir)
        with open(os.path.join(self.state_dir, ".maintenance.flock"), "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                return action(self._read())
            finally:
                fcntl.flock(guard, fcntl.LOCK_UN)

    def acquire(self, owner: str, ttl: int, phase: str, wait: int, force: bool) -> Dict[str, Any]:
        deadline = _now() + max(wait, 0)
        pause = threading.Event()
        while True:
            result = self._guarded(lambda current: self._try_acquire(current, owner, ttl, phase, force))
            if result is not None:
                return result
            current = self._read() or {}
            if _now() >= deadline:
                raise AutopodError("this host is under maintenance by %s; wait for it, or take the lock over with "
                                   "force once that run is known to be dead" % _describe(current),
                                   lock=current)
            pause.wait(min(POLL_SECONDS, max(deadline - _now(), 0)))

    def _try_acquire(self, current: Optional[Dict[str, Any]], owner: str, ttl: int, phase: str,
                     force: bool) -> Optional[Dict[str, Any]]:
        mine = current is not None and current.get("owner") == owner
        free = current is None or current.get("expires_at", 0) < _now()
        if not (mine or free or force):
            return None
        lock = {"owner": owner, "phase": phase, "acquired_at": current["acquired_at"] if mine else _now(),
                "expires_at": _now() + ttl, "previous": None if mine or current is None else current}
        changed = not mine or current.get("phase") != phase
        if not self.check_mode:
            write_private_json(self.path, lock)
        return {"changed": changed, "lock": lock, "taken_over": bool(current) and not mine and not free}

    def release(self, owner: str, force: bool) -> Dict[str, Any]:
        def _release(current: Optional[Dict[str, Any]]) -> Dict[str, Any]:
            if current is None:
                return {"changed": False, "lock": None}
            if current.get("owner") != owner and not force:
                raise AutopodError("the maintenance lock is held by %s, not by %s; not released"
                                   % (_describe(current), owner), lock=current)
            if not self.check_mode:
                os.unlink(self.path)
            return {"changed": True, "lock": None, "released": current}
        return self._guarded(_release)

    def read(self) -> Dict[str, Any]:
        current = self._read()
        return {"changed": False, "lock": current,
                "held": bool(current) and current.get("expires_at", 0) >= _now()}
