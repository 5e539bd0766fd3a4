"""What a move would do, for a dry run (`--check`): the strategy `auto` would choose, the MiB that would cross
between the hosts and the pause to expect.

The pause is an estimate from this project's own measurements (README.md, "Encryption's cost" and "Live
migration": a counter pod between two lab hosts over TLS): post-copy freezes for about 120 ms plus 0.23 ms per
MiB of memory (its pages follow the pod), stop-and-copy and pre-copy's last round for about 150 ms plus 3.1 ms
per MiB sent while frozen (about 320 MiB/s through the TLS relay). A plan, not a promise: a pod that writes
its memory fast pauses longer.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

MIB = 1 << 20
POST_COPY_BASE_MS, POST_COPY_MS_PER_MIB = 120.0, 0.23
COPY_BASE_MS, COPY_MS_PER_MIB = 150.0, 3.1


def plan_move(pod: Mapping[str, Any], destination_post_copy: bool, strategy: str, storage: str) -> Dict[str, Any]:
    """`pod`: pod_info's entry for it on its source; `destination_post_copy`: pod_receive's (check mode) verdict."""
    if strategy == "auto":  # pre-copy needs soft-dirty tracking on the source, which a dry run does not probe
        strategy = "post-copy" if destination_post_copy else "stop-and-copy"
    memory = int(pod.get("resident_memory") or 0)
    rootfs = int(pod.get("disk_usage") or 0) if storage == "copy" else 0
    if strategy == "post-copy":
        pause = POST_COPY_BASE_MS + POST_COPY_MS_PER_MIB * memory / MIB
    else:
        pause = COPY_BASE_MS + COPY_MS_PER_MIB * memory / MIB
    return {"strategy": strategy, "memory_mib": round(memory / MIB, 1), "rootfs_mib": round(rootfs / MIB, 1),
            "mib": round((memory + rootfs) / MIB, 1), "expected_pause_ms": round(pause)}
