"""The migration's pure decisions: which strategy, and which image entries travel."""

from __future__ import annotations

import pytest

from ansible_collections.autopod.autopod.plugins.module_utils.migration import protocol
from ansible_collections.autopod.autopod.plugins.module_utils.migration.pause_model import (
    ANOTHER_ROUND, FREEZE, PRE_COPY_MAX_ROUNDS, pre_copy_verdict)
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError


@pytest.mark.parametrize("asked, post_local, post_remote, pre_local, chosen", [
    ("auto", None, True, None, "post-copy"),
    ("auto", "no uffd", True, None, "pre-copy"),
    ("auto", None, False, None, "pre-copy"),
    ("auto", "no uffd", True, "no soft-dirty", "stop-and-copy"),
    ("pre-copy", None, True, None, "pre-copy"),
    ("stop-and-copy", None, True, None, "stop-and-copy"),
    ("post-copy", None, False, None, None),
    ("pre-copy", None, True, "no soft-dirty", None),
])
def test_strategy_choice(asked, post_local, post_remote, pre_local, chosen):
    if chosen is None:
        with pytest.raises(AutopodError, match="%s is not possible" % asked):
            protocol.resolve_strategy(asked, post_local, post_remote, pre_local)
    else:
        assert protocol.resolve_strategy(asked, post_local, post_remote, pre_local) == chosen


MIB = 1 << 20


@pytest.mark.parametrize("asked, memory_mib, budget, pre_local, chosen, why", [
    ("auto", 16, 200, "no soft-dirty", "post-copy", None),  # about 124 ms
    ("auto", 1024, 300, "no soft-dirty", None, "no strategy fits"),  # post-copy about 355 ms
    ("auto", 16, 100, "no soft-dirty", None, "over the budget of 100 ms"),
    ("stop-and-copy", 64, 300, None, None, "stop-and-copy is not possible: its expected pause for 64 MiB"),
    ("stop-and-copy", 32, 300, None, "stop-and-copy", None),  # about 249 ms
    ("auto", 16, None, "no soft-dirty", "post-copy", None),  # no budget
    ("pre-copy", 1024, 300, None, "pre-copy", None),  # judged by its rounds; its floor, about 150 ms, fits
    ("pre-copy", 16, 100, None, None, "pre-copy is not possible: its expected pause for a last round with nothing to send, about 150 ms"),
])
def test_a_pause_budget_chooses_the_strategy_or_refuses_the_move(asked, memory_mib, budget, pre_local, chosen, why):
    if chosen is None:
        with pytest.raises(AutopodError, match=why):
            protocol.resolve_strategy(asked, None, True, pre_local, memory_mib * MIB, budget)
    else:
        assert protocol.resolve_strategy(asked, None, True, pre_local, memory_mib * MIB, budget) == chosen


def test_a_budget_bounds_the_freeze():
    assert protocol.Limits(max_freeze=30, max_pause_ms=250).max_freeze == 0.25
    assert protocol.Limits(max_freeze=30).max_freeze == 30


PAGES_PER_MIB = 256


def test_pre_copy_without_a_budget_runs_two_rounds():
    assert pre_copy_verdict([(4096, 1.0)], None)[0] == ANOTHER_ROUND
    verdict, expected, rate = pre_copy_verdict([(4096, 1.0), (2560, 1.0)], None)  # wrote 10 MiB in the first round's 1 s
    assert verdict == FREEZE and rate == 10.0 and round(expected) == 181  # 10 MiB to send frozen: 150 + 31 ms


def test_pre_copy_with_a_budget_goes_on_until_the_last_round_fits_it():
    rounds = [(64 * PAGES_PER_MIB, 2.0), (8 * PAGES_PER_MIB, 0.5)]  # 4 MiB/s; 0.5 s of it is 2 MiB, about 156 ms
    assert pre_copy_verdict(rounds, 150)[0] == ANOTHER_ROUND
    assert pre_copy_verdict(rounds, 160)[0] == FREEZE
    shorter = rounds + [(2 * PAGES_PER_MIB, 0.1)]  # a shorter round leaves less to send: 0.4 MiB, about 151 ms
    assert pre_copy_verdict(shorter, 152)[:1] == (FREEZE,)


def test_pre_copy_refuses_before_the_freeze_a_pod_that_writes_too_fast_for_the_budget():
    fast = [(64 * PAGES_PER_MIB, 1.0)] + [(200 * PAGES_PER_MIB, 1.0)] * (PRE_COPY_MAX_ROUNDS - 1)  # 200 MiB/s
    assert pre_copy_verdict(fast[:-1], 300)[0] == ANOTHER_ROUND
    with pytest.raises(AutopodError, match="pre-copy cannot meet the pause budget of 300 ms: after 6 rounds the pod "
                                           "writes 200 MiB/s, so its last round would pause it about 770 ms"):
        pre_copy_verdict(fast, 300)
