# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pause a move is expected to cost, by strategy and memory: what a pause budget (`max_pause_ms`) is
judged against, and what a dry run plans with.

From this project's own measurements (README.md, "Encryption's cost" and "Live migration": a counter
pod between two lab hosts over TLS on a 2-vCPU machine): post-copy freezes for about 120 ms plus 0.23 ms
per MiB of memory (its pages follow the pod); stop-and-copy for about 150 ms plus 3.1 ms per MiB sent
while frozen (about 320 MiB/s through the TLS relay). Pre-copy's last round sends only what was written
since the round before, which is not known before the rounds run; it is judged as stop-and-copy, an upper
bound. A pod that writes its memory fast pauses longer than this model says under post-copy too.
"""

from __future__ import annotations

from typing import Optional

MIB = 1 << 20
POST_COPY = "post-copy"
POST_COPY_BASE_MS, POST_COPY_MS_PER_MIB = 120.0, 0.23
COPY_BASE_MS, COPY_MS_PER_MIB = 150.0, 3.1


def expected_pause_ms(strategy: str, memory: int) -> float:
    if strategy == POST_COPY:
        return POST_COPY_BASE_MS + POST_COPY_MS_PER_MIB * memory / MIB
    return COPY_BASE_MS + COPY_MS_PER_MIB * memory / MIB


def over_budget(strategy: str, memory: int, max_pause_ms: Optional[int]) -> Optional[str]:
    """Why `strategy` would pause `memory` bytes of pod longer than the budget (None when it fits, or no budget)."""
    if not max_pause_ms:
        return None
    expected = expected_pause_ms(strategy, memory)
    if expected <= max_pause_ms:
        return None
    return "its expected pause for %d MiB, about %d ms, is over the budget of %d ms" % (
        memory // MIB, expected, max_pause_ms)
