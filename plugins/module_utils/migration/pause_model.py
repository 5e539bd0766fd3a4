# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pause a move is expected to cost, by strategy and memory: what a pause budget (`max_pause_ms`) is
judged against, and what a dry run plans with.

From this project's own measurements (README.md, "Encryption's cost" and "Live migration": a counter
pod between two lab hosts over TLS on a 2-vCPU machine): post-copy freezes for about 120 ms plus 0.23 ms
per MiB of memory (its pages follow the pod); stop-and-copy for about 150 ms plus 3.1 ms per MiB sent
while frozen (about 320 MiB/s through the TLS relay). Pre-copy's last round sends only what was written
since the round before, which is not known before the rounds run: a dry run plans it as stop-and-copy, an
upper bound; a move judges it after each round from the dirty rate the rounds measured (pre_copy_verdict),
as QEMU's pre-copy does with its downtime limit. A pod that writes its memory fast pauses longer than this
model says under post-copy too.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError

MIB = 1 << 20
PAGE = 4096
POST_COPY, PRE_COPY, STOP_AND_COPY, AUTO = "post-copy", "pre-copy", "stop-and-copy", "auto"
PRE_COPY_MIN_ROUNDS = 2  # the second round sends only what the first left dirty, and gives a dirty rate
PRE_COPY_MAX_ROUNDS = 6  # with a budget: rounds until the last one fits it, at most this many
FREEZE, ANOTHER_ROUND = "freeze", "another round"
POST_COPY_BASE_MS, POST_COPY_MS_PER_MIB = 120.0, 0.23
COPY_BASE_MS, COPY_MS_PER_MIB = 150.0, 3.1


def expected_pause_ms(strategy: str, memory: int) -> float:
    if strategy == POST_COPY:
        return POST_COPY_BASE_MS + POST_COPY_MS_PER_MIB * memory / MIB
    return COPY_BASE_MS + COPY_MS_PER_MIB * memory / MIB


def over_budget(strategy: str, memory: int, max_pause_ms: Optional[int]) -> Optional[str]:
    """Why `strategy` would pause `memory` bytes of pod longer than the budget (None when it fits, or no budget).
    Pre-copy is judged here by its floor, a last round with nothing to send; its rounds judge the rest."""
    if not max_pause_ms:
        return None
    judged = 0 if strategy == PRE_COPY else memory
    expected = expected_pause_ms(strategy, judged)
    if expected <= max_pause_ms:
        return None
    what = "a last round with nothing to send" if strategy == PRE_COPY else "%d MiB" % (memory // MIB)
    return "its expected pause for %s, about %d ms, is over the budget of %d ms" % (what, expected, max_pause_ms)


def pre_copy_verdict(rounds: Sequence[Tuple[int, float]], max_pause_ms: Optional[int]) -> Tuple[str, float, float]:
    """After a pre-copy round: (FREEZE or ANOTHER_ROUND, the pause a freeze now is expected to cost in ms,
    the dirty rate measured in MiB/s). `rounds` holds each round's (pages sent, seconds it took).

    Round N sends what the pod wrote while round N-1 ran, so the pages of the last round over the
    seconds of the one before are the rate the pod dirties its memory; the freeze will send what it
    writes while the last round runs. Without a budget, PRE_COPY_MIN_ROUNDS rounds; with one, rounds
    until that expected pause fits it. A pod that writes too fast for it to ever fit is not frozen:
    AutopodError says so, and the move stops with the pod running where it was."""
    if len(rounds) < PRE_COPY_MIN_ROUNDS:
        return ANOTHER_ROUND, 0.0, 0.0
    earlier_seconds = rounds[-2][1]
    last_pages, last_seconds = rounds[-1]
    rate = last_pages * PAGE / max(earlier_seconds, 0.001)
    expected = expected_pause_ms(STOP_AND_COPY, int(rate * last_seconds))
    if not max_pause_ms or expected <= max_pause_ms:
        return FREEZE, expected, rate / MIB
    if len(rounds) >= PRE_COPY_MAX_ROUNDS:
        raise AutopodError("pre-copy cannot meet the pause budget of %d ms: after %d rounds the pod writes %.0f MiB/s, "
                           "so its last round would pause it about %d ms"
                           % (max_pause_ms, len(rounds), rate / MIB, expected))
    return ANOTHER_ROUND, expected, rate / MIB
