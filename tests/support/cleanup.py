"""Remove what test pods leave behind, including leftovers of a crashed earlier run.

Test pods and bridges carry a prefix, so a leftover can be recognised without a manifest.
"""

from __future__ import annotations

import contextlib
import os
import shutil

from ansible_collections.autopod.autopod.plugins.module_utils import cgroups, linux, network
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.pods import Pods


def remove_pod_leftovers(prefix: str) -> None:
    """Kill processes, delete namespaces (and with them veths) and cgroups of pods named PREFIX*."""
    netns_names = os.listdir(network.NETNS_DIR) if os.path.isdir(network.NETNS_DIR) else []
    parent = os.path.dirname(cgroups.path("x"))
    cgroup_names = os.listdir(parent) if os.path.isdir(parent) else []
    pods = {n[len("autopod-"):] for n in netns_names if n.startswith("autopod-" + prefix)}
    pods |= {n for n in cgroup_names if n.startswith(prefix)}
    for pod in pods:
        cgroups.kill_all(pod)
        with contextlib.suppress(OSError, AutopodError):
            network.release_identity(pod)
        with contextlib.suppress(OSError):
            cgroups.remove(pod)


def remove_state_dir(state_dir: str) -> None:
    """Remove every pod of a state directory through the collection itself, then the directory."""
    pods = Pods(state_dir)
    for name in pods.store.names():
        with contextlib.suppress(AutopodError, OSError):
            pods.ensure({"name": name, "state": "absent", "stop_timeout": 0})
    shutil.rmtree(state_dir, ignore_errors=True)


def adopt_orphans() -> None:
    """Make this process the reaper of the pod supervisors its modules start.

    A supervisor is a daemon; when its pod ends it exits and must be reaped. On a
    real host systemd does that; on machines whose PID 1 does not reap, the test
    or benchmark process takes the job, as a child subreaper.
    """
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)


def reap_orphans() -> int:
    """Reap adopted processes that have exited. Call only while no subprocess of ours is running."""
    reaped = 0
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped += 1
