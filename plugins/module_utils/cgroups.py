# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pod's memory cgroup (cgroup v2, or the v1 memory controller on hybrid hosts).

Every pod gets a cgroup `autopod/<name>`, with `memory_max` as its limit when one is
set; CRIU records the path and puts restored processes back into it.
"""

from __future__ import annotations

import errno
import os
import signal
from typing import List, Optional

from ansible_collections.autopod.autopod.plugins.module_utils import linux

CGROUP_ROOT = "/sys/fs/cgroup"
PARENT = "autopod"


def _v2() -> bool:
    return os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))


def _base() -> str:
    return CGROUP_ROOT if _v2() else os.path.join(CGROUP_ROOT, "memory")


def path(pod: str) -> str:
    return os.path.join(_base(), PARENT, pod)


def _write(file_path: str, value: str) -> None:
    with open(file_path, "w") as handle:
        handle.write(value)


def _enable_memory_controller() -> None:
    """cgroup v2 only hands the memory controller down to children that ask for it."""
    for directory in (CGROUP_ROOT, os.path.join(CGROUP_ROOT, PARENT)):
        with open(os.path.join(directory, "cgroup.subtree_control")) as handle:
            if "memory" in handle.read().split():
                continue
        _write(os.path.join(directory, "cgroup.subtree_control"), "+memory")


def room() -> Optional[int]:
    """Bytes the pods of this host may still take under the limit an operator set on their parent cgroup
    (`autopod`: memory.max, or v1's memory.limit_in_bytes); None when it has no limit, or none exists yet."""
    parent = os.path.join(_base(), PARENT)
    limit_file, usage_file = (("memory.max", "memory.current") if _v2()
                              else ("memory.limit_in_bytes", "memory.usage_in_bytes"))
    try:
        with open(os.path.join(parent, limit_file)) as handle:
            limit = handle.read().strip()
        with open(os.path.join(parent, usage_file)) as handle:
            usage = int(handle.read())
    except FileNotFoundError:
        return None
    if limit == "max" or int(limit) >= 1 << 62:  # v1 says "no limit" with a page-rounded LONG_MAX
        return None
    return max(int(limit) - usage, 0)


def create(pod: str, memory_max: Optional[int]) -> str:
    """Create (or reuse) the pod's cgroup and set its memory limit; returns its cgroup.procs path."""
    directory = path(pod)
    os.makedirs(directory, exist_ok=True)
    if _v2():
        _enable_memory_controller()
        _write(os.path.join(directory, "memory.max"), str(memory_max) if memory_max else "max")
    else:
        _write(os.path.join(directory, "memory.limit_in_bytes"), str(memory_max) if memory_max else "-1")
    return os.path.join(directory, "cgroup.procs")


def processes(pod: str) -> List[int]:
    try:
        with open(os.path.join(path(pod), "cgroup.procs")) as handle:
            return [int(line) for line in handle if line.strip()]
    except OSError:
        return []


def signal_all(pod: str, signum: int) -> List[int]:
    """Send `signum` to every process in the pod's cgroup; returns their PIDs."""
    pids = processes(pod)
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    return pids


def kill_all(pod: str, wait: float = 10.0) -> List[int]:
    """SIGKILL every process in the pod's cgroup (a half-restored tree, say) and wait until they are gone."""
    pids = signal_all(pod, signal.SIGKILL)
    for pid in pids:
        linux.wait_for_exit(pid, wait)
    return pids


def remove(pod: str) -> None:
    """Remove the pod's cgroup once it is empty; a cgroup still in use is left alone."""
    try:
        os.rmdir(path(pod))
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EBUSY):
            raise
