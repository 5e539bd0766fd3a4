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
