"""The migration's pure decisions: which strategy, and which image entries travel."""

from __future__ import annotations

import os

import pytest

from ansible_collections.autopod.autopod.plugins.module_utils import migration
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
            migration.resolve_strategy(asked, post_local, post_remote, pre_local)
    else:
        assert migration.resolve_strategy(asked, post_local, post_remote, pre_local) == chosen


def test_all_entries_lists_directories_before_their_contents(tmp_path):
    (tmp_path / "pre1").mkdir()
    (tmp_path / "pre1" / "pages-1.img").write_text("x")
    (tmp_path / "inventory.img").write_text("x")
    os.symlink("pre1", tmp_path / "parent")
    entries = migration._all_entries(str(tmp_path))
    assert set(entries) == {"pre1", "pre1/pages-1.img", "inventory.img", "parent"}
    assert entries.index("pre1") < entries.index("pre1/pages-1.img")
