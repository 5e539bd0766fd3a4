# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wall-clock phases of an operation, returned by the modules as `timings` (milliseconds)."""

from __future__ import annotations

import time
from typing import Dict


class Stopwatch:
    def __init__(self) -> None:
        self.started = self._last = time.monotonic()
        self.phases: Dict[str, float] = {}

    def lap(self, phase: str) -> None:
        """Charge the time since the previous lap to `phase`."""
        now = time.monotonic()
        self.phases[phase + "_ms"] = round((now - self._last) * 1000, 1)
        self._last = now

    def result(self) -> Dict[str, float]:
        timings = dict(self.phases)
        timings["total_ms"] = round((time.monotonic() - self.started) * 1000, 1)
        return timings
