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

from ansible_collections.autopod.autopod.plugins.module_utils import capacity, linux, network, sandbox
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.lifecycle import (
    check_network_free, check_paths, release, resident_memory, start_supervised, wait_supervisor)
from ansible_collections.autopod.autopod.plugins.module_utils.pod import PodSpec, validate_name
from ansible_collections.autopod.autopod.plugins.module_utils.store import (
    CHECKPOINTED, INCOMING, INCOMPLETE, MOVED, RUNNING, STOPPED, Manifest, PodStore)

# Manifests that must never start the pod here: a copy runs, or may run, elsewhere (fencing).
FENCED = {MOVED: "moved to %s; it runs there and must not also start here from this old definition",
          INCOMPLETE: "arrived here by a move that never completed (its source %s kept or revived it)",
          INCOMING: "is being received from %s right now"}


class Pods:
    def __init__(self, state_dir: str, check_mode: bool = False) -> None:
        self.store = PodStore(state_dir)
        self.check_mode = check_mode

    # ---- actions (never called in check mode) ----

    def _start(self, manifest: Manifest) -> None:
        spec = manifest.spec

        def launch(netns: str, procs: str) -> int:
            network.attach(spec)  # a pod that starts afresh has no connections to protect
            return sandbox.launch(spec, netns, procs)

        # Announce the address, as an interface coming up does: it may have had another MAC before.
        start_supervised(self.store, manifest, launch, after_report=lambda: network.announce(spec))

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
            busy = existing.busy() if existing else None
            if busy:
                raise AutopodError("pod %s is %s; try again when that ends" % (name, busy))
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
        if wanted == "started" and state in FENCED:
            where = existing.moved_to if state == MOVED else (existing.migration or {}).get("peer")
            raise AutopodError("pod %s %s; remove this copy with state=absent (or move the pod back)"
                               % (existing.name, FENCED[state] % where))
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
            "moved_to": manifest.moved_to if state == MOVED else None,
            "moving": manifest.busy(),
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

    def report(self, name: Optional[str], disk_usage: bool) -> Dict[str, Any]:
        """pod_info's result: the pods, with what their root filesystems take if asked (a walk of each
        tree), and the host's free figures, which peer placement plans with."""
        pods = self.info(name)
        for pod in pods:
            if disk_usage and pod["state"] == RUNNING:
                pod["disk_usage"] = capacity.tree_size(pod["rootfs"])
        return {"changed": False, "pods": pods, "host": capacity.host_figures(self.store.state_dir)}


def describe_spec(spec: PodSpec) -> Dict[str, Any]:
    net = spec.network
    return {
        "name": spec.name, "rootfs": spec.rootfs, "command": spec.command, "hostname": spec.hostname,
        "address": net.address if net else None, "mac": net.mac if net else None,
        "bridge": net.bridge if net else None, "memory_max": spec.memory_max,
        "mounts": [m.__dict__ for m in spec.mounts],
    }
