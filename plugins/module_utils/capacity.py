"""What a host has room for, and what a pod takes: the figures a move checks and peer placement plans with."""

from __future__ import annotations

import os
from typing import Any, Dict, List

from ansible_collections.autopod.autopod.plugins.module_utils import cgroups


def _kernel_memory_available() -> int:
    """Bytes the kernel could give new processes without swapping (MemAvailable)."""
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def memory_available() -> int:
    """Bytes new pods could take here: MemAvailable, or less where the operator capped the pods' parent cgroup
    (`autopod`) with a memory limit, so that pods leave room for the host's own services."""
    room = cgroups.room()
    available = _kernel_memory_available()
    return available if room is None else min(available, room)


def disk_free(path: str) -> int:
    """Bytes free to unprivileged writers on the filesystem that holds `path` (or would hold it)."""
    while not os.path.exists(path):
        path = os.path.dirname(path)
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def cpu_flags() -> List[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them (x86 `flags`, arm64 `Features`)."""
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            key, _sep, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return sorted(value.split())
    return []


def tree_size(path: str) -> int:
    """Bytes of disk the files under `path` take (st_blocks), without following links or crossing mounts."""
    total = 0
    device = os.lstat(path).st_dev
    pending = [path]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                info = entry.stat(follow_symlinks=False)
                total += info.st_blocks * 512
                if entry.is_dir(follow_symlinks=False) and info.st_dev == device:
                    pending.append(entry.path)
    return total


def host_figures(state_dir: str) -> Dict[str, Any]:
    return {"memory_available": memory_available(), "disk_available": disk_free(state_dir),
            "cpu_flags": cpu_flags()}
