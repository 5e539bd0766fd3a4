"""What a move would do, for a dry run (`--check`): the strategy `auto` would choose, the MiB that would cross
between the hosts and the pause to expect (module_utils/migration/pause_model.py, the model a pause budget
is judged by too).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.migration.pause_model import MIB, expected_pause_ms
from ansible_collections.autopod.autopod.plugins.module_utils.migration.protocol import (
    AUTO, POST_COPY, PRE_COPY, STOP_AND_COPY, resolve_strategy)

# auto never plans pre-copy: whether the source can do it is not probed in a dry run (asked for, it is planned)
PRE_COPY_NOT_PROBED = "a dry run does not probe the source's soft-dirty tracking"


def plan_move(pod: Mapping[str, Any], destination_post_copy: bool, strategy: str, storage: str,
              max_pause_ms: Optional[int] = None) -> Dict[str, Any]:
    """`pod`: pod_info's entry for it on its source; `destination_post_copy`: pod_receive's (check mode) verdict.
    The strategy is chosen as pod_migrate chooses it (protocol.resolve_strategy); `refused` says why the move
    would not start (None when it would)."""
    memory = int(pod.get("resident_memory") or 0)
    try:
        pre_copy = None if strategy == PRE_COPY else PRE_COPY_NOT_PROBED
        chosen = resolve_strategy(strategy, None, destination_post_copy, pre_copy, memory, max_pause_ms)
        refused = None
    except AutopodError as exc:
        chosen = strategy if strategy != AUTO else (POST_COPY if destination_post_copy else STOP_AND_COPY)
        refused = exc.msg
    rootfs = int(pod.get("disk_usage") or 0) if storage == "copy" else 0
    return {"strategy": chosen, "memory_mib": round(memory / MIB, 1), "rootfs_mib": round(rootfs / MIB, 1),
            "mib": round((memory + rootfs) / MIB, 1), "expected_pause_ms": round(expected_pause_ms(chosen, memory)),
            "refused": refused}
