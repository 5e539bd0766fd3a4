# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The source's copy of a moving pod: kept stopped until the destination has the pod, then killed, or
revived where it was if the move fails.

A move dumps with `--leave-stopped`: CRIU then leaves the pod's processes stopped, its established
TCP connections in repair mode and its network namespace locked by an nftables table named
CRIU-<id>. Nothing of the pod runs or answers while another host takes it over, and it can still
come back. CRIU undoes all three itself only when its dump fails; when the move fails later (the
destination could not restore, died, or stopped answering while a post-copied pod's pages were
still here), revive() does: remove the lock table, take every TCP socket of the pod out of repair
mode (tcp_repair.py), let the processes continue, and
tell the segment where the pod is (gratuitous ARP). The pod continues from the moment of the freeze.
The same applies when CRIU itself is killed mid-dump, which leaves the same three behind.

A post-copy dump's processes are stopped (SIGSTOP) here as soon as CRIU has dumped everything but
their memory: if the page transfer then fails, CRIU 4.2 resumes them with their sockets still in
repair mode, where every recv fails with EPERM and every send with EINVAL; stopped, they wait for
revive() instead.
"""

from __future__ import annotations

import signal
from typing import Dict, List

from ansible_collections.autopod.autopod.plugins.module_utils import cgroups, network, tcp_repair
from ansible_collections.autopod.autopod.plugins.module_utils.pod import PodSpec


def stop(spec: PodSpec) -> List[int]:
    """Stop every process of the pod (they are resumed by revive() or killed by end())."""
    return cgroups.signal_all(spec.name, signal.SIGSTOP)


def end(spec: PodSpec) -> List[int]:
    """The move is complete: kill the source's stopped copy. Sockets in repair mode close silently."""
    return cgroups.kill_all(spec.name)


def left_frozen(spec: PodSpec) -> bool:
    """Whether a dump that ended abnormally (CRIU killed) left the pod stopped or its network locked."""
    for pid in cgroups.processes(spec.name):
        try:
            with open("/proc/%d/stat" % pid, "rb") as stat:
                if stat.read().rsplit(b")", 1)[1].split()[0] in (b"T", b"t"):
                    return True
        except OSError:
            continue
    return bool(network.criu_lock_tables(network.netns_path(spec.name)))


def revive(spec: PodSpec) -> Dict[str, object]:
    """Bring the stopped, locked copy of the pod back to life here; returns what was undone."""
    pids = stop(spec)  # those CRIU resumed on its own wait here too
    tables = network.clear_criu_locks(network.netns_path(spec.name))
    repaired = tcp_repair.leave_repair(pids)
    cgroups.signal_all(spec.name, signal.SIGCONT)
    network.announce(spec)
    return {"processes": len(pids), "lock_tables_removed": tables, "connections_repaired": len(repaired)}
