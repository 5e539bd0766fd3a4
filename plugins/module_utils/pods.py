# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A pod's life on one host: create, start, stop, remove, describe.

`ensure()` backs the pod_create module: it compares what exists with what was
asked, plans the actions once, and carries them out unless in check mode.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any, Dict, List, Optional

from ansible_collections.autopod.autopod.plugins.module_utils import cgroups, linux, network, sandbox, supervisor
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.pod import PodSpec, validate_name
from ansible_collections.autopod.autopod.plugins.module_utils.store import (
    CHECKPOINTED, RUNNING, STOPPED, Manifest, PodStore, make_private_dir)
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
                and other.state() in (RUNNING, CHECKPOINTED)):
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


def start_supervised(store: PodStore, manifest: Manifest, start, watch: Optional[Stopwatch] = None,
                     after_report=None, identity_prepared: bool = False) -> Dict[str, int]:
    """Build the pod's identity (or activate one prepared before), then let a new supervisor run
    `start(netns_path, cgroup_procs)`. On failure, the identity is released again and the error is raised.
    """
    spec = manifest.spec
    watch = watch or Stopwatch()
    try:
        if identity_prepared:
            network.activate(spec)
        else:
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


class Pods:
    def __init__(self, state_dir: str, check_mode: bool = False) -> None:
        self.store = PodStore(state_dir)
        self.check_mode = check_mode

    # ---- actions (never called in check mode) ----

    def _start(self, manifest: Manifest) -> None:
        spec = manifest.spec
        # Announce the address, as an interface coming up does: it may have had another MAC before.
        start_supervised(self.store, manifest, lambda netns, procs: sandbox.launch(spec, netns, procs),
                         after_report=lambda: network.announce(spec))

    def _stop(self, manifest: Manifest, timeout: float) -> str:
        how = "already-stopped"
        if manifest.is_running():
            how = linux.stop_process(manifest.init_pid, manifest.init_start_time, timeout)
            wait_supervisor(manifest)
        release(manifest.spec)
        manifest.mark_stopped()
        self.store.save(manifest)
        return how

    def _remove(self, manifest: Manifest, timeout: float) -> None:
        self._stop(manifest, timeout)
        for image_dir in sorted({manifest.image_dir or "", self.store.default_image_dir(manifest.name)}):
            if image_dir:
                shutil.rmtree(image_dir, ignore_errors=True)
        self.store.remove(manifest.name)

    # ---- planning ----

    def ensure(self, params: Dict[str, Any]) -> Dict[str, Any]:
        name = validate_name(params.get("name"))
        wanted = params["state"]
        with self.store.lock():
            existing = self.store.load(name)
            before = self.describe(existing) if existing else {"state": "absent"}
            if wanted == "absent":
                actions = self._plan_absent(existing)
            else:
                actions = self._plan_present(existing, params, wanted)
            manifest = existing
            for action in actions:
                if self.check_mode:
                    continue
                manifest = self._execute(action, manifest, params)
            result: Dict[str, Any] = {"changed": bool(actions), "actions": [a["description"] for a in actions]}
            after = self._predicted(before, actions, wanted) if self.check_mode else (
                self.describe(self.store.load(name)) if wanted != "absent" else {"state": "absent"})
            result["pod"] = after
            result["diff"] = {"before": before, "after": after}
            return result

    def _plan_absent(self, existing: Optional[Manifest]) -> List[Dict[str, Any]]:
        if existing is None:
            return []
        return [{"op": "remove", "description": "remove pod %s (%s)" % (existing.name, existing.state())}]

    def _plan_present(self, existing: Optional[Manifest], params: Dict[str, Any],
                      wanted: str) -> List[Dict[str, Any]]:
        defines = params.get("rootfs") is not None or params.get("command") is not None
        if existing is None:
            if not defines:
                raise AutopodError("pod %s does not exist on this host; rootfs and command are needed to "
                                   "create it" % params["name"])
            spec = PodSpec.from_params(params)
            actions = [{"op": "define", "spec": spec, "description": "create pod %s" % spec.name}]
            if wanted == "started":
                check_network_free(self.store, spec)
                actions.append({"op": "start", "description": "start pod %s" % spec.name})
            return actions
        actions = []
        state = existing.state()
        if defines:
            spec = PodSpec.from_params(params)
            changed = sorted(k for k, v in spec.to_dict().items() if existing.spec.to_dict().get(k) != v)
            if changed and state != STOPPED:
                raise AutopodError("pod %s is %s with a different %s; stop it (state=stopped) before changing "
                                   "its definition" % (existing.name, state, ", ".join(changed)))
            if changed:
                actions.append({"op": "define", "spec": spec,
                                "description": "update pod %s: %s" % (existing.name, ", ".join(changed))})
        if wanted == "started" and state == CHECKPOINTED:
            raise AutopodError("pod %s is checkpointed at %s; bring it back with autopod.autopod.pod_restore "
                               "(starting it afresh would lose its state)" % (existing.name, existing.image_dir))
        if wanted == "started" and state == STOPPED:
            check_network_free(self.store, actions[0]["spec"] if actions else existing.spec)
            actions.append({"op": "start", "description": "start pod %s" % existing.name})
        if wanted == "stopped" and state == RUNNING:
            actions.append({"op": "stop", "description": "stop pod %s" % existing.name})
        return actions

    def _execute(self, action: Dict[str, Any], manifest: Optional[Manifest],
                 params: Dict[str, Any]) -> Optional[Manifest]:
        op = action["op"]
        timeout = float(params.get("stop_timeout", 10))
        if op == "define":
            check_paths(action["spec"])
            if manifest is None:
                manifest = Manifest(spec=action["spec"])
            else:
                manifest.spec = action["spec"]
            self.store.save(manifest)
        elif op == "start":
            try:
                self._start(manifest)
            except AutopodError:
                if manifest.generation == 0:  # a pod that never ran: leave nothing behind
                    self.store.remove(manifest.name)
                raise
        elif op == "stop":
            self._stop(manifest, timeout)
        elif op == "remove":
            self._remove(manifest, timeout)
            manifest = None
        return manifest

    @staticmethod
    def _predicted(before: Dict[str, Any], actions: List[Dict[str, Any]], wanted: str) -> Dict[str, Any]:
        after = dict(before)
        for action in actions:
            if "spec" in action:
                after.update(describe_spec(action["spec"]))
        after["state"] = {"started": RUNNING, "stopped": STOPPED, "absent": "absent"}[wanted] \
            if actions else before.get("state")
        return after

    # ---- facts ----

    def describe(self, manifest: Optional[Manifest]) -> Dict[str, Any]:
        if manifest is None:
            return {"state": "absent"}
        state = manifest.state()
        facts = describe_spec(manifest.spec)
        facts.update({
            "definition": manifest.spec.to_dict(),
            "home": manifest.home,
            "state": state,
            "generation": manifest.generation,
            "init_pid": manifest.init_pid if state == RUNNING else None,
            "supervisor_pid": manifest.supervisor_pid if state == RUNNING else None,
            "uptime": round(time.time() - manifest.started_at, 3) if state == RUNNING else None,
            "resident_memory": resident_memory(manifest.name) if state == RUNNING else None,
            "image_dir": manifest.image_dir if state == CHECKPOINTED else None,
            "last_checkpoint": manifest.checkpoint or None,
            "console_log": os.path.join(manifest.spec.rootfs, sandbox.CONSOLE_LOG.lstrip("/")),
        })
        last_exit = self.store.read_exit(manifest.name)
        facts["last_exit"] = last_exit if last_exit and last_exit.get("init_pid") == manifest.init_pid else None
        return facts

    def info(self, name: Optional[str]) -> List[Dict[str, Any]]:
        if name is not None:
            manifest = self.store.load(validate_name(name))
            return [self.describe(manifest)] if manifest else []
        return [self.describe(m) for m in self.store.all()]


def describe_spec(spec: PodSpec) -> Dict[str, Any]:
    net = spec.network
    return {
        "name": spec.name, "rootfs": spec.rootfs, "command": spec.command, "hostname": spec.hostname,
        "address": net.address if net else None, "mac": net.mac if net else None,
        "bridge": net.bridge if net else None, "memory_max": spec.memory_max,
        "mounts": [m.__dict__ for m in spec.mounts],
    }


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
