# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The destination side of a live move (module pod_receive): check that this host can take the pod,
claim its name, build its network identity held (its veth down), and leave a daemon that serves the
conversation of protocol.py when the source connects.

The destination never runs the pod before the source says GO, and never keeps a copy that cannot be
whole: if a post-copied pod's pages stop coming, its copy here is killed before CRIU's lazy-pages
could let it run on with missing memory.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import time
from typing import Any, Callable, Dict, Optional

from ansible_collections.autopod.autopod.plugins.module_utils import capacity, cgroups, linux, network, rootfs_delta, transfer
from ansible_collections.autopod.autopod.plugins.module_utils import criu as criu_driver
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.lifecycle import check_network_free, check_paths, release
from ansible_collections.autopod.autopod.plugins.module_utils.migration import protocol as P
from ansible_collections.autopod.autopod.plugins.module_utils.migration.connections import Acceptor
from ansible_collections.autopod.autopod.plugins.module_utils.migration.credentials import Credentials
from ansible_collections.autopod.autopod.plugins.module_utils.migration.receiver_pod import ArrivingPod, Claim
from ansible_collections.autopod.autopod.plugins.module_utils.migration.requests import ReceiveRequest
from ansible_collections.autopod.autopod.plugins.module_utils.pod import PodSpec
from ansible_collections.autopod.autopod.plugins.module_utils.store import (
    CHECKPOINTED, MOVED, RUNNING, STOPPED, Manifest, PodStore, make_private_dir)


class Aborted(Exception):
    """The source gave the move up."""


class CopyKilled(Exception):
    """A post-copied pod's memory stopped coming; its copy here is already killed and given back."""


class ReceiverConversation:
    """The destination's half of one move, once the source's control connection has arrived."""

    def __init__(self, channel: transfer.Channel, pod: ArrivingPod, acceptor: Acceptor, limits: P.Limits,
                 post_copy_problem: Optional[str], log: Callable[[str], None]) -> None:
        self.channel, self.pod, self.acceptor, self.limits = channel, pod, acceptor, limits
        self.post_copy_problem, self.log = post_copy_problem, log
        self.strategy = ""
        self.handlers = {P.PLAN: self._plan, P.CPUINFO: self._cpuinfo, P.ROOTFS_SCAN: self._rootfs_scan,
                         P.ROOTFS: self._rootfs, P.PAGES: self._pages, P.PAGES_SENT: self._pages_sent,
                         P.IMAGES: self._images}

    def run(self) -> str:
        """Serve the move; returns how it ended ("moved"), or raises after telling the source why."""
        try:
            return self._serve()
        except (Aborted, CopyKilled):
            raise
        except Exception as exc:  # told to the source, if it still listens; the caller undoes
            try:
                with self.channel.wait_for(2.0):
                    self.channel.send({"type": P.ERROR, "msg": "destination: %s" % _message(exc)})
            except AutopodError:
                pass
            raise

    def _serve(self) -> str:
        self.channel.send({"type": P.READY, "post_copy": self.post_copy_problem is None,
                           "memory_available": capacity.memory_available()})
        while True:
            message = self._next(self.limits.reply)
            if message["type"] == P.RESTORE:
                return self._restore_and_hand_over()
            handler = self.handlers.get(message["type"])
            if handler is None:
                raise AutopodError("unexpected message %r" % message["type"])
            handler(message)

    def _next(self, timeout: float) -> Dict[str, Any]:
        with self.channel.wait_for(timeout):
            message = self.channel.receive()
        if message.get("type") == P.ABORT:
            raise Aborted()
        return message

    def _plan(self, message: Dict[str, Any]) -> None:
        self.strategy = message.get("strategy", "")
        self.log("plan: %s, %s storage" % (self.strategy, message.get("storage")))
        if self.strategy == P.POST_COPY and self.post_copy_problem:
            raise AutopodError("this host cannot take a post-copied pod: %s" % self.post_copy_problem)
        needed = int(message.get("memory", 0)) + P.MEMORY_MARGIN
        if capacity.memory_available() < needed:
            raise AutopodError("not enough memory here: %d MiB available, %d MiB needed"
                               % (capacity.memory_available() >> 20, needed >> 20))
        self.channel.send({"type": P.PLAN_OK})

    def _cpuinfo(self, _message: Dict[str, Any]) -> None:
        directory = make_private_dir(self.pod.image_dir + ".cpu")
        with self.channel.wait_for(self.limits.stall):
            self.channel.receive_tree(directory)
        self.pod.criu.cpuinfo("check", directory)
        self.channel.send({"type": P.CPU_OK})

    def _rootfs_scan(self, _message: Dict[str, Any]) -> None:
        self.channel.send({"type": P.ROOTFS_STATE, "entries": rootfs_delta.scan_tree(self.pod.spec.rootfs)})

    def _rootfs(self, message: Dict[str, Any]) -> None:
        needed = int(message.get("bytes", 0))
        rootfs = self.pod.open_rootfs(needed, message.get("delete", []))
        self.log("rootfs: receiving %d bytes" % needed)
        with self.channel.wait_for(self.limits.stall):
            self.channel.receive_tree(rootfs)
        self.channel.send({"type": P.ROOTFS_OK})

    def _pages(self, message: Dict[str, Any]) -> None:
        self.log("pages: %s stream %s" % ("lazy" if message.get("lazy") else "page", message.get("round", 0)))
        self.channel.send({"type": P.PAGES_READY})
        if message.get("lazy"):
            return  # the stream is taken when lazy-pages starts, at RESTORE
        number = int(message.get("round", 0))
        stream = self.acceptor.wait_stream(P.page_stream_id(number), self.limits.handshake)
        self.pod.start_page_server(number, stream, self.limits.stall)

    def _pages_sent(self, _message: Dict[str, Any]) -> None:
        self.pod.end_page_server(self.limits.stall)
        self.channel.send({"type": P.PAGES_OK})

    def _images(self, _message: Dict[str, Any]) -> None:
        self.log("images: receiving")
        with self.channel.wait_for(self.limits.stall):
            self.channel.receive_tree(self.pod.image_dir)
        self.channel.send({"type": P.IMAGES_OK})

    def _restore_and_hand_over(self) -> str:
        if self.strategy == P.POST_COPY:
            self.pod.start_lazy_pages(self.acceptor.wait_stream(P.page_stream_id(0), self.limits.handshake),
                                      self.limits.stall)
        self.pod.restore_held(self.limits.max_freeze)
        self.log("restore: held")
        self.channel.send({"type": P.HELD})
        message = self._next(self.limits.reply)
        if message["type"] != P.GO:
            raise AutopodError("expected GO, got %s" % message["type"])
        running = self.pod.go(self.limits.max_freeze)  # from here on the pod runs here
        self.log("running: PID %s" % running.get("init_pid"))
        self._say(dict(running, type=P.RUNNING))
        if self.strategy == P.POST_COPY:
            failure = self.pod.wait_lazy(1.0)
            if failure:
                self.pod.give_back()  # kills the copy here first: it must not run on without its memory
                self._say({"type": P.LAZY_FAILED, "msg": failure})
                raise CopyKilled("the pod's memory stopped coming (%s); its copy here was killed" % failure)
            self.log("pages: all in")
            self._say({"type": P.LAZY_DONE})
        self.pod.settle()
        return "moved"

    def _say(self, message: Dict[str, Any]) -> None:
        """After GO the pod's fate no longer depends on the channel: a message that cannot go is logged."""
        try:
            with self.channel.wait_for(self.limits.stall):
                self.channel.send(message)
        except AutopodError as exc:
            self.log("could not tell the source %s: %s" % (message["type"], exc.msg))


class ReceiverDaemon:
    """Runs detached after pod_receive returns: waits for the source, serves the move, cleans up."""

    def __init__(self, pod: ArrivingPod, listener: socket.socket, credentials: Credentials, timeout: float,
                 limits: P.Limits, post_copy_problem: Optional[str]) -> None:
        self.pod, self.listener, self.credentials, self.timeout = pod, listener, credentials, timeout
        self.limits, self.post_copy_problem = limits, post_copy_problem

    def log(self, message: str) -> None:
        os.write(1, ("%s %s\n" % (time.strftime("%H:%M:%S"), message)).encode())

    def serve(self) -> None:
        acceptor = Acceptor(self.listener, self.credentials, self.pod.spec.name, self.limits.handshake, self.log).start()
        channel = acceptor.wait_control(self.timeout)
        try:
            if channel is None:
                raise AutopodError("no source came within %d seconds" % self.timeout)
            outcome = ReceiverConversation(channel, self.pod, acceptor, self.limits, self.post_copy_problem,
                                           self.log).run()
            self.log("receiver done: %s" % outcome)
        except Aborted:
            self.log("the source gave the move up")
            self.pod.give_back()
        except CopyKilled as exc:
            self.log(str(exc))
        except Exception as exc:  # the conversation told the source; undone here
            self.log("failed: %s" % _message(exc))
            self.pod.give_back()
        finally:
            acceptor.close()
            if channel is not None:
                channel.close()


def _message(exc: BaseException) -> str:
    return getattr(exc, "msg", None) or repr(exc)


def _check_claimable(existing: Optional[Manifest], spec: PodSpec) -> None:
    """Whether this host may take pod `spec.name`: not if it runs here, is leaving, or is another pod."""
    if existing is None or existing.state() in (MOVED,):
        return
    state = existing.state()
    if state == RUNNING:
        raise AutopodError("pod %s already runs on this host" % spec.name)
    busy = existing.busy()
    if busy and existing.migration["role"] == "outgoing":
        raise AutopodError("pod %s is %s" % (spec.name, busy))
    if state in (STOPPED, CHECKPOINTED) and existing.spec.to_dict() != spec.to_dict():
        raise AutopodError("another pod named %s is defined on this host (%s); remove it first" % (spec.name, state))


def _check_rootfs(store: PodStore, spec: PodSpec, storage: str) -> None:
    """Copy storage writes into the rootfs path: only an empty or missing directory, or an earlier copy of
    this same pod, may be there; shared storage needs the pod's rootfs to be there already."""
    if storage == "shared":
        check_paths(spec)
        return
    for mount in spec.mounts:
        if not os.path.exists(mount.source):
            raise AutopodError("this host cannot take pod %s: mount source %s does not exist here"
                               % (spec.name, mount.source))
    if not os.path.lexists(spec.rootfs):
        return
    if not os.path.isdir(spec.rootfs) or os.path.islink(spec.rootfs):
        raise AutopodError("this host cannot take pod %s: %s exists here and is not a directory" % (spec.name, spec.rootfs))
    owners = [m.name for m in store.all() if m.spec.rootfs == spec.rootfs]
    if owners and owners != [spec.name]:
        raise AutopodError("this host cannot take pod %s: %s is the rootfs of pod %s here"
                           % (spec.name, spec.rootfs, ", ".join(owners)))
    if not owners and os.listdir(spec.rootfs):
        raise AutopodError("this host cannot take pod %s: %s already holds files that are not an earlier copy of "
                           "this pod; copy storage would overwrite them" % (spec.name, spec.rootfs))


def prepare(request: ReceiveRequest, check_mode: bool) -> Dict[str, Any]:
    """pod_receive: check, claim, build the held identity, and leave the receiver daemon listening."""
    spec = PodSpec.from_definition(request.definition)
    store = PodStore(request.state_dir)
    criu = criu_driver.Criu(request.criu_path)
    ok, output = criu.check()
    if not ok:
        raise AutopodError("this host cannot take pod %s: `criu check` failed: %s"
                           % (spec.name, (output.splitlines() or ["?"])[-1]))
    criu.ensure_compatible(tcp=True)
    post_copy_problem = P.post_copy_problem(criu)
    checks = {"criu": criu.facts(), "post_copy": post_copy_problem is None, "post_copy_problem": post_copy_problem,
              "memory_available": capacity.memory_available()}
    target = os.path.normpath(request.image_dir or os.path.join(request.state_dir, "incoming", spec.name))
    with store.lock():
        existing = store.load(spec.name)
        _check_claimable(existing, spec)
        check_network_free(store, spec)
        _check_rootfs(store, spec, request.storage)
        if check_mode:
            return {"changed": True, "checks": checks, "image_dir": target, "post_copy": post_copy_problem is None}
        if existing is not None and existing.busy():  # an earlier receiver for this pod, abandoned: it goes
            os.kill(existing.migration["pid"], signal.SIGKILL)
        claim = secrets.token_hex(8)
        pod = ArrivingPod(store, criu, spec, target, Claim(claim, request.home, existing))
        listener = _build(spec, pod, request.listen, request.port)
        daemon = ReceiverDaemon(pod, listener, request.credentials, request.timeout, request.limits, post_copy_problem)
        receiver_pid = int(linux.daemonize(linux.report_pid(daemon.serve), target + ".log", [listener.fileno()]))
        bound = listener.getsockname()[1]
        listener.close()
        manifest = existing if existing is not None else Manifest(spec=spec)
        manifest.spec = spec
        manifest.mark_moving("incoming", "", claim)
        manifest.migration.update(pid=receiver_pid, pid_start=linux.process_start_time(receiver_pid))
        store.save(manifest)
    return {"changed": True, "checks": checks, "address": request.listen, "port": bound, "image_dir": target,
            "receiver_pid": receiver_pid, "post_copy": post_copy_problem is None}


def _build(spec: PodSpec, pod: ArrivingPod, listen: str, port: int) -> socket.socket:
    """The pod's held network identity, its cgroup, an empty image directory, and the listening socket."""
    network.build_identity(spec)
    try:
        cgroups.create(spec.name, spec.memory_max)
        pod.cleanup()
        make_private_dir(pod.image_dir)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((listen, port))
        listener.listen(16)
        return listener
    except BaseException:
        release(spec)
        raise
