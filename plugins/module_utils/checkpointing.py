# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checkpoint a running pod into an image directory, and restore a pod from one.

An image directory holds CRIU's images plus `autopod-pod.json`, the pod's
definition at the time of the checkpoint, so a host that has never seen the pod
can rebuild its network identity and restore it. Images hold process memory:
directories are 0700, files 0600, and a checkpoint is written to a fresh
directory and renamed into place only when complete, so a failed checkpoint
never damages an earlier image.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ansible_collections.autopod.autopod.plugins.module_utils import criu as criu_driver
from ansible_collections.autopod.autopod.plugins.module_utils import cgroups, commands, holds, network, tcp_repair
from ansible_collections.autopod.autopod.plugins.module_utils.criu_images import damaged_pages
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.pod import PodSpec, validate_name
from ansible_collections.autopod.autopod.plugins.module_utils.lifecycle import (
    check_network_free, check_paths, release, start_supervised, wait_supervisor)
from ansible_collections.autopod.autopod.plugins.module_utils.pods import FENCED, Pods
from ansible_collections.autopod.autopod.plugins.module_utils.store import (
    CHECKPOINTED, MOVED, RUNNING, Manifest, make_private_dir, write_private_json)
from ansible_collections.autopod.autopod.plugins.module_utils.timing import Stopwatch

POD_META = "autopod-pod.json"
# Images CRIU always writes for a process tree; without them an image is not worth trying.
REQUIRED_IMAGES = ("inventory.img", "pstree.img")


def image_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _dirs, files in os.walk(path) for f in files)


def _make_private(path: str) -> None:
    for directory, _dirs, files in os.walk(path):
        os.chmod(directory, 0o700)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o600)


def _publish(tmp: str, image_dir: str) -> None:
    """Swap the finished image into place; the previous image, if any, goes only now."""
    old = None
    if os.path.exists(image_dir):
        old = image_dir + ".old-%d" % os.getpid()
        os.rename(image_dir, old)
    os.rename(tmp, image_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def read_image_meta(image_dir: str) -> Dict[str, Any]:
    meta_path = os.path.join(image_dir, POD_META)
    if not os.path.isdir(image_dir):
        raise AutopodError("no checkpoint image at %s" % image_dir)
    missing = [n for n in (POD_META,) + REQUIRED_IMAGES if not os.path.isfile(os.path.join(image_dir, n))]
    if missing:
        raise AutopodError("the checkpoint image at %s is incomplete: %s missing" % (image_dir, ", ".join(missing)))
    try:
        with open(meta_path) as handle:
            meta = json.load(handle)
    except ValueError as exc:
        raise AutopodError("the checkpoint image at %s is damaged: %s unreadable (%s)" % (image_dir, POD_META, exc))
    damaged = damaged_pages(image_dir)
    if damaged:
        raise AutopodError("the checkpoint image at %s is damaged (truncated or altered): %s"
                           % (image_dir, "; ".join(damaged)))
    return meta


def write_image_meta(image_dir: str, spec: PodSpec, generation: int, tcp: bool, criu: criu_driver.Criu,
                     **extra: Any) -> None:
    """The one writer of autopod-pod.json (read by read_image_meta): what a host that has never seen the
    pod needs to restore it, and where and how the image was made."""
    meta = {"spec": spec.to_dict(), "tcp_established": tcp, "generation": generation,
            "source_host": socket.gethostname(), "kernel": platform.release(),
            "criu_version": criu_driver.version_string(criu.version), "checkpointed_at": time.time()}
    meta.update(extra)
    write_private_json(os.path.join(image_dir, POD_META), meta)


def restore_timeout(image_dir: str) -> float:
    """Generous: a minute plus the time to read the image at 50 MB/s. Only a hung CRIU reaches it."""
    return 60.0 + image_size(image_dir) / 50e6


class Checkpointer:
    def __init__(self, state_dir: str, criu_path: str, check_mode: bool = False) -> None:
        self.pods = Pods(state_dir, check_mode)
        self.store = self.pods.store
        self.criu_path = criu_path
        self.check_mode = check_mode

    def _resolve_image_dir(self, name: str, image_dir: Optional[str], manifest: Optional[Manifest]) -> str:
        path = image_dir or (manifest.image_dir if manifest and manifest.image_dir else None) \
            or self.store.default_image_dir(name)
        if not os.path.isabs(path):
            raise AutopodError("image_dir must be an absolute path, got %r" % path)
        return os.path.normpath(path)

    # ---- checkpoint ----

    def checkpoint(self, name: str, image_dir: Optional[str], leave_running: bool, tcp: bool) -> Dict[str, Any]:
        watch = Stopwatch()
        name = validate_name(name)
        criu = criu_driver.Criu(self.criu_path)
        with self.store.lock():
            manifest = self.store.load(name)
            if manifest is None:
                raise AutopodError("there is no pod named %s on this host" % name)
            if manifest.busy():
                raise AutopodError("pod %s is %s; try again when that ends" % (name, manifest.busy()))
            target = self._resolve_image_dir(name, image_dir, manifest)
            state = manifest.state()
            if state == CHECKPOINTED and not leave_running and os.path.isdir(target):
                return self._result(False, manifest, target, "pod %s is already checkpointed" % name, criu)
            if state != RUNNING:
                raise AutopodError("pod %s is not running (it is %s): there is nothing to checkpoint" % (name, state))
            spec = manifest.spec
            if target == spec.rootfs or target.startswith(spec.rootfs.rstrip("/") + "/"):
                raise AutopodError("image_dir %s is inside the pod's rootfs; images hold the pod's memory and "
                                   "must live outside it" % target)
            criu.ensure_compatible(tcp)
            if self.check_mode:
                return self._result(True, manifest, target, "checkpoint pod %s into %s" % (name, target), criu)
            watch.lap("prepare")
            stats = self._dump(criu, manifest, target, leave_running, tcp)
            watch.lap("criu_dump")
            if not leave_running:
                wait_supervisor(manifest)
                release(spec)
                manifest.mark_stopped(CHECKPOINTED)
                watch.lap("release")
            manifest.image_dir = target
            manifest.checkpoint = {"image_dir": target, "at": time.time(), "image_size": image_size(target),
                                   "leave_running": leave_running, "tcp_established": tcp}
            self.store.save(manifest)
            result = self._result(True, manifest, target, "checkpointed pod %s into %s" % (name, target), criu)
            result.update(stats=stats, timings=watch.result())
            return result

    def _dump(self, criu: criu_driver.Criu, manifest: Manifest, target: str, leave_running: bool,
              tcp: bool) -> Dict[str, Any]:
        spec = manifest.spec
        make_private_dir(os.path.dirname(target))
        tmp = make_private_dir(target + ".new-%d" % os.getpid())
        work = self.store.fresh_work_dir(spec.name)
        try:
            write_image_meta(tmp, spec, manifest.generation, tcp, criu)
            netns_inode = os.stat("/proc/%d/ns/net" % manifest.init_pid).st_ino
            criu.run(criu_driver.DumpOptions(pid=manifest.init_pid, images_dir=tmp, work_dir=work,
                                             netns_inode=netns_inode, mounts=spec.mounts, tcp_established=tcp,
                                             leave_running=leave_running), "dump")
        except AutopodError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            still = "and is still running" if manifest.is_running() else "and is NOT running any more"
            raise AutopodError("checkpoint of pod %s failed %s: %s" % (spec.name, still, exc.msg), **exc.details)
        _make_private(tmp)
        _publish(tmp, target)
        return criu_driver.read_stats(work, "dump")

    # ---- restore ----

    def restore(self, name: str, image_dir: Optional[str], keep_image: bool) -> Dict[str, Any]:
        watch = Stopwatch()
        name = validate_name(name)
        with self.store.lock():
            manifest = self.store.load(name)
            target = self._resolve_image_dir(name, image_dir, manifest)
            if manifest is not None and manifest.state() == RUNNING:
                return {"changed": False, "actions": ["pod %s is already running" % name],
                        "pod": self.pods.describe(manifest), "image_dir": target}
            if manifest is not None and manifest.state() in FENCED:
                where = manifest.moved_to if manifest.state() == MOVED else (manifest.migration or {}).get("peer")
                raise AutopodError("pod %s %s; restoring an image of it here could run it twice"
                                   % (name, FENCED[manifest.state()] % where))
            meta = read_image_meta(target)
            spec = PodSpec.from_dict(meta["spec"])
            if spec.name != name:
                raise AutopodError("the image at %s holds pod %s, not %s" % (target, spec.name, name))
            tcp = bool(meta.get("tcp_established", True))
            criu = criu_driver.Criu(self.criu_path)
            criu.ensure_compatible(tcp)
            check_paths(spec)
            check_network_free(self.store, spec)
            action = "restore pod %s from %s" % (name, target)
            if self.check_mode:
                return {"changed": True, "actions": [action], "image_dir": target,
                        "pod": self.pods.describe(manifest) if manifest else {"name": name, "state": "absent"}}
            if manifest is None:
                manifest = Manifest(spec=spec, generation=int(meta.get("generation", 0)))
            manifest.spec = spec
            work = self.store.fresh_work_dir(name)
            watch.lap("prepare")

            def run_restore(netns_path: str, _procs: str) -> int:
                return criu_restore(criu, spec, RestoreRun(target, work, tcp), netns_path)

            try:
                start_supervised(self.store, manifest, run_restore, watch,
                                 after_report=lambda: network.announce(spec))
            except AutopodError as exc:
                raise AutopodError("restore of pod %s failed; the image at %s is kept for a retry: %s"
                                   % (name, target, exc.msg), image_dir=target, **exc.details)
            stats = criu_driver.read_stats(work, "restore")
            manifest.image_dir = target if keep_image else None
            if not keep_image:
                shutil.rmtree(target, ignore_errors=True)
            self.store.save(manifest)
            return {"changed": True, "actions": [action], "image_dir": target, "image_removed": not keep_image,
                    "pod": self.pods.describe(manifest), "stats": stats, "criu": criu.facts(),
                    "timings": watch.result()}

    def _result(self, changed: bool, manifest: Manifest, target: str, action: str,
                criu: criu_driver.Criu) -> Dict[str, Any]:
        return {"changed": changed, "actions": [action], "image_dir": target,
                "image_size": image_size(target) if os.path.isdir(target) else 0,
                "criu": criu.facts(), "pod": self.pods.describe(manifest)}


@dataclass
class RestoreRun:
    """One restore of a pod: its images, CRIU's work directory, whether it has TCP connections, whether its
    memory arrives later (post-copy), and who holds it before it resumes (None: the restore itself)."""

    image_dir: str
    work: str
    tcp: bool
    lazy: bool = False
    hold_dir: Optional[str] = None


def criu_restore(criu: criu_driver.Criu, spec: PodSpec, run: RestoreRun, netns_path: str) -> int:
    """Runs inside the supervisor: restore detached, so the restored tree is reparented to it.

    The pod's network is held (its veth down) until its sockets exist (network.build_identity). The
    restore is held too, after the tree is restored and before CRIU unlocks the network and resumes it
    (holds.py): the pod goes on its bridge in that moment, and its connections leave repair mode with a
    window probe (tcp_repair.py), so each learns at once what its peer received while it was frozen
    instead of waiting out TCP's 1-second initial retransmission timeout. Without
    `hold_dir` the restore holds, attaches and lets go by itself; with it, the owner of that hold (a
    receiver, waiting for its source) does.
    """
    image_dir, work, tcp, hold_dir = run.image_dir, run.work, run.tcp, run.hold_dir
    hold = holds.Hold(os.path.join(work, "hold")) if hold_dir is None else None
    netns_fd = os.open(netns_path, os.O_RDONLY)
    try:
        settings = holds.criu_settings(hold.directory if hold else hold_dir)
        options = criu_driver.RestoreOptions(images_dir=image_dir, work_dir=work, rootfs=spec.rootfs, netns_fd=netns_fd,
                                             mounts=spec.mounts, tcp_established=tcp, lazy_pages=run.lazy,
                                             action_script=settings["script"], env=settings["env"])
        process = criu.start(options)
    finally:
        os.close(netns_fd)
    log = os.path.join(work, options.log_name)
    try:
        if hold is not None:
            hold.wait_held(restore_timeout(image_dir), lambda: process.poll() is None)
            network.attach(spec)
            tcp_repair.leave_repair(cgroups.processes(spec.name))
            hold.release(holds.GO)
        code = commands.wait(process, restore_timeout(image_dir))
    except AutopodError:  # CRIU ended, or hung, before the hold
        code = process.poll()
    finally:
        if hold is not None:
            hold.close()
    if code is None:
        process.kill()
        process.wait()
        raise AutopodError("criu restore did not finish within %d seconds and was stopped: %s (full log: %s)"
                           % (restore_timeout(image_dir), criu_driver.log_errors(log), log))
    if code != 0:
        raise AutopodError("criu restore failed (exit %d): %s (full log: %s)" % (code, criu_driver.log_errors(log), log),
                           criu_argv=criu.last_argv)
    if tcp:
        network.clear_criu_locks(netns_path)
    with open(os.path.join(work, "restore.pid")) as handle:
        return int(handle.read().strip())
