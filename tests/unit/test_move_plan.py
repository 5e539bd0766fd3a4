"""The dry run's plan of a move: the strategy pod_migrate would choose, the MiB and the expected pause."""

from __future__ import annotations

import pytest

from ansible_collections.autopod.autopod.plugins.plugin_utils.move_plan import plan_move

MIB = 1 << 20
POD = {"name": "web", "resident_memory": 64 * MIB, "disk_usage": 200 * MIB}


@pytest.mark.parametrize("destination_post_copy, asked, budget, strategy, refused", [
    (True, "auto", None, "post-copy", None),
    (False, "auto", None, "stop-and-copy", None),  # auto never plans pre-copy: the source is not probed
    (True, "auto", 200, "post-copy", None),  # about 135 ms
    (False, "auto", 200, "stop-and-copy", "no strategy fits"),  # about 348 ms
    (True, "stop-and-copy", 200, "stop-and-copy", "stop-and-copy is not possible: its expected pause"),
    (False, "post-copy", None, "post-copy", "the destination cannot do post-copy"),
    (False, "pre-copy", None, "pre-copy", None),
])
def test_the_plan_chooses_as_a_move_would(destination_post_copy, asked, budget, strategy, refused):
    plan = plan_move(POD, destination_post_copy, asked, "copy", budget)
    assert plan["strategy"] == strategy
    assert (plan["refused"] is None) if refused is None else (refused in plan["refused"]), plan["refused"]


def test_the_plan_counts_the_rootfs_only_when_it_is_copied():
    assert plan_move(POD, True, "auto", "copy")["mib"] == 264.0
    assert plan_move(POD, True, "auto", "shared")["mib"] == 64.0
    assert plan_move(POD, True, "auto", "copy")["expected_pause_ms"] == 135  # 120 + 0.23 * 64
