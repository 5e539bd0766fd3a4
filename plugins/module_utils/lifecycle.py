# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A pod's identity on one host, made and given back in one place: its network namespace and veth
(network.py), its cgroup (cgroups.py) and its supervisor (supervisor.py). Starting a pod, restoring
it, receiving it from another host and reviving it all go through here.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, Optional

from ansible_collections.autopod.autopod.plugins.module_utils import cgroups, linux, network, supervisor
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.pod import PodSpec
from ansible_collections.autopod.autopod.plugins.module_utils.store import (
    CHECKPOINTED, INCOMING, RUNNING, Manifest, PodStore, make_private_dir)
from ansible_collections.autopod.autopod.plugins.module_utils.timing import Stopwatch

SUPERVISOR_EXIT_TIMEOUT = 5.0


def check_network_free(store: PodStore, spec: PodSpec) -> None:
    """Refuse a pod whose bridge is missing or whose address another holder already has here."""
    if not spec.network:
        return
    network.require_pyroute2()
    if not network.bridge_exists(spec.network.bridge):
        raise AutopodError("bridge %s does not exist on this host (pod %s needs it for %s)"
                           % (spec.network.bridge, spec.name, spec.network.address))
    holder = network.address_holder(spec.network.ip)
    if holder:
        raise AutopodError("address %s is already used on this host by interface %s" % (spec.network.ip, holder))
    for other in store.all():
        if (other.name != spec.name and other.spec.network and other.spec.network.ip == spec.network.ip
                and other.state() in (RUNNING, CHECKPOINTED, INCOMING)):
            raise AutopodError("address %s already belongs to pod %s (%s) on this host"
                               % (spec.network.ip, other.name, other.state()))


def check_paths(spec: PodSpec) -> None:
    if not os.path.isdir(spec.rootfs):
        raise AutopodError("rootfs %s of pod %s does not exist on this host" % (spec.rootfs, spec.name))
    for mount in spec.mounts:
        if not os.path.exists(mount.source):
            raise AutopodError("mount source %s of pod %s does not exist on this host" % (mount.source, spec.name))


def release(spec: PodSpec) -> None:
    """Give back what a stopped pod held on the host: its network identity and cgroup.

    Anything still in the cgroup (the remains of a failed restore) is killed first.
    """
    cgroups.kill_all(spec.name)
    network.release_identity(spec.name)
    cgroups.remove(spec.name)


def start_supervised(store: PodStore, manifest: Manifest, start: Callable[[str, str], int],
                     watch: Optional[Stopwatch] = None, after_report: Optional[Callable[[], object]] = None,
                     identity_prepared: bool = False) -> Dict[str, int]:
    """Build the pod's identity, held (its veth down; or use one prepared before), then let a new
    supervisor run `start(netns_path, cgroup_procs)`, which attaches the network when the pod may be
    reached (network.attach). On failure, the identity is released again and the error is raised.
    """
    spec = manifest.spec
    watch = watch or Stopwatch()
    try:
        if not identity_prepared:
            network.build_identity(spec)
        procs = cgroups.create(spec.name, spec.memory_max)
        make_private_dir(store.pod_dir(spec.name))
        exit_path = store.exit_path(spec.name)
        if os.path.exists(exit_path):
            os.unlink(exit_path)
        watch.lap("identity")
        report = supervisor.spawn(lambda: start(network.netns_path(spec.name), procs),
                                  os.path.join(store.pod_dir(spec.name), "supervisor.log"), exit_path,
                                  after_report)
        watch.lap("start")
    except BaseException:
        release(spec)
        raise
    manifest.mark_running(report["init_pid"], report["init_start_time"], report["supervisor_pid"])
    store.save(manifest)
    return report


def wait_supervisor(manifest: Manifest) -> None:
    """The supervisor writes the exit record, then exits: wait so the record is there."""
    if manifest.supervisor_pid:
        linux.wait_for_exit(manifest.supervisor_pid, SUPERVISOR_EXIT_TIMEOUT)


def resident_memory(pod: str) -> Optional[int]:
    """Sum of the resident set sizes of the pod's processes, in bytes."""
    try:
        with open(os.path.join(cgroups.path(pod), "cgroup.procs")) as handle:
            pids = [int(line) for line in handle if line.strip()]
    except OSError:
        return None
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total
