# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place external tools are run: argument lists only, never a shell, in the C locale."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Dict, Optional, Sequence


@dataclass
class Result:
    argv: Sequence[str]
    rc: int
    out: str
    err: str

    def brief(self) -> str:
        text = (self.err or self.out).strip().splitlines()
        return "`%s` exited %d: %s" % (" ".join(self.argv), self.rc, text[-1] if text else "no output")


def run(argv: Sequence[str], env: Optional[Dict[str, str]] = None, timeout: Optional[float] = None) -> Result:
    """Run a command and capture its output. A missing program gives rc 127, like a shell would."""
    environment = dict(os.environ)
    environment.update({"LC_ALL": "C", "LANG": "C"})
    environment.update(env or {})
    try:
        proc = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              env=environment, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        return Result(argv, 127, "", str(exc))
    return Result(argv, proc.returncode, proc.stdout, proc.stderr)
