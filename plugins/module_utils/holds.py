# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Holding a restored pod before it resumes, until the host it comes from lets it go.

CRIU runs its action script at `post-restore` once the whole tree is restored and before the tasks
resume or the network is unlocked; a script that fails there makes CRIU kill the restored tree. The
script AutoPod gives it (SCRIPT) tells the waiting caller through one FIFO and reads the verdict
from another: "go" lets the tree resume, anything else (or the caller's death, which leaves the
verdict FIFO without writers, so the script reads end-of-file) makes CRIU kill it. So a destination
never runs a pod its source has not let go of, and a destination that dies while holding kills its
copy. The script is fixed text; the only input it reads is the hold directory, from CRIU's
environment, quoted. CRIU runs action scripts with `sh -c PATH`, so the script lives at a fixed
path without spaces.
"""

from __future__ import annotations

import os
import select
import time
from typing import Callable, Dict, Optional

from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError

SCRIPT_DIR = "/run/autopod"
SCRIPT = os.path.join(SCRIPT_DIR, "criu-hold-v1")
_SCRIPT_TEXT = """#!/bin/sh
# Written by the autopod.autopod collection (holds.py): hold a restored pod until it is let go.
[ "$CRTOOLS_SCRIPT_ACTION" = post-restore ] || exit 0
[ -n "$AUTOPOD_HOLD_DIR" ] || exit 0
# the verdict FIFO is opened first, so that a verdict written and closed at once is not lost
exec 3< "$AUTOPOD_HOLD_DIR/verdict" || exit 1
echo held > "$AUTOPOD_HOLD_DIR/status" || exit 1
read -r verdict <&3 || exit 1
[ "$verdict" = go ]
"""
GO, ABORT = "go", "abort"


def install_script() -> str:
    """Write the action script if it is missing or differs (root-only directory, atomic rename)."""
    os.makedirs(SCRIPT_DIR, mode=0o700, exist_ok=True)
    os.chmod(SCRIPT_DIR, 0o700)
    try:
        with open(SCRIPT, encoding="utf-8") as current:
            if current.read() == _SCRIPT_TEXT:
                return SCRIPT
    except FileNotFoundError:
        pass
    temporary = "%s.%d" % (SCRIPT, os.getpid())
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o700)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(_SCRIPT_TEXT)
    os.replace(temporary, SCRIPT)
    return SCRIPT


def criu_settings(directory: str) -> Dict[str, object]:
    """What a restore passes to CRIU to be held by the Hold in `directory`: the script, and its environment."""
    return {"script": install_script(), "env": {"AUTOPOD_HOLD_DIR": directory}}


class Hold:
    """The caller's side of one hold: two FIFOs in `directory`, opened read-write so that neither the
    script nor this side blocks on open, and so that this side's death is seen as end-of-file."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for name in ("status", "verdict"):
            path = os.path.join(directory, name)
            if os.path.lexists(path):
                os.unlink(path)
            os.mkfifo(path, 0o600)
        self._status = os.open(os.path.join(directory, "status"), os.O_RDWR | os.O_NONBLOCK)
        self._verdict: Optional[int] = os.open(os.path.join(directory, "verdict"), os.O_RDWR)

    def wait_held(self, timeout: float, still_restoring: Callable[[], bool]) -> None:
        """Wait until the restored tree is held; raise if CRIU ends first (`still_restoring()` false) or on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            ready = select.select([self._status], [], [], 0.05)[0]
            if ready and os.read(self._status, 64):
                return
            if not still_restoring():
                raise AutopodError("the restore ended before the pod was held (see restore.log)")
            if time.monotonic() > deadline:
                raise AutopodError("the restore did not reach its hold within %d seconds" % timeout)

    def release(self, verdict: str) -> None:
        """Let the held tree resume (GO) or make CRIU kill it (ABORT). Once only."""
        if self._verdict is None:
            return
        try:
            os.write(self._verdict, (verdict + "\n").encode())
        finally:
            os.close(self._verdict)
            self._verdict = None

    def close(self) -> None:
        """Give up the hold; a tree still held is then killed by CRIU (the script reads no verdict)."""
        self.release(ABORT)
        os.close(self._status)
