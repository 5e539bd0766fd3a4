"""The migration's pure decisions: which strategy, and which image entries travel."""

from __future__ import annotations

import pytest

from ansible_collections.autopod.autopod.plugins.module_utils.migration import protocol
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
