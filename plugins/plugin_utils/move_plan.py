"""What a move would do, for a dry run (`--check`): the strategy `auto` would choose, the MiB that would cross
between the hosts and the pause to expect (module_utils/migration/pause_model.py, the model a pause budget
is judged by too).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from ansible_collections.autopod.autopod.plugins.module_utils.migration.pause_model import (
    MIB, expected_pause_ms, over_budget)


def plan_move(pod: Mapping[str, Any], destination_post_copy: bool, strategy: str, storage: str,
              max_pause_ms: Optional[int] = None) -> Dict[str, Any]:
    """`pod`: pod_info's entry for it on its source; `destination_post_copy`: pod_receive's (check mode) verdict.
    With a budget, `refused` says why the move would not start (None when it would)."""
    memory = int(pod.get("resident_memory") or 0)
    if strategy == "auto":  # pre-copy needs soft-dirty tracking on the source, which a dry run does not probe
        fitting = [s for s in (["post-copy"] if destination_post_copy else []) + ["stop-and-copy"]
                   if not over_budget(s, memory, max_pause_ms)]
        strategy = fitting[0] if fitting else ("post-copy" if destination_post_copy else "stop-and-copy")
    rootfs = int(pod.get("disk_usage") or 0) if storage == "copy" else 0
    return {"strategy": strategy, "memory_mib": round(memory / MIB, 1), "rootfs_mib": round(rootfs / MIB, 1),
            "mib": round((memory + rootfs) / MIB, 1), "expected_pause_ms": round(expected_pause_ms(strategy, memory)),
            "refused": over_budget(strategy, memory, max_pause_ms)}
