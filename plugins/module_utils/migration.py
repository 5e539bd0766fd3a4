# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Live migration of a pod between two hosts.

The destination first prepares (`Receiver.prepare`, module pod_receive): it checks that it can take
the pod, builds the pod's network identity with the veth kept off the bridge, and leaves a receiver
daemon listening for this one migration. The source then migrates (`migrate`, module pod_migrate),
talking to the receiver over one connection (transfer.py):

  hello      token, pod, memory needed         -> the destination checks memory, answers its abilities
  cpuinfo    `criu cpuinfo dump` of the source -> `criu cpuinfo check` on the destination
  rootfs     (copy storage) a first delta while the pod runs
  --- the pod is frozen from here ---
  dump       post-copy: `criu dump --lazy-pages` (the dump stays up as page server);
             stop-and-copy: pages stream to a `criu page-server` on the destination
  rootfs     (copy storage) the second delta: what changed since the first
  images     the rest of the images, as a tar stream
  restore    the destination activates the veth, starts `criu lazy-pages` (post-copy), restores, replies
  --- the pod runs on the destination ---
Post-copy: the source's dump serves pages until the destination has them all; the source must stay up
until then, and migrate() does not return before. If the restore on the destination fails, the pod
is restored on the source from the same images (post-copy: from its own page server; stop-and-copy:
the destination sends the images back) and the error says what happened.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.autopod.autopod.plugins.module_utils import cgroups, linux, network, transfer
from ansible_collections.autopod.autopod.plugins.module_utils import criu as criu_driver
from ansible_collections.autopod.autopod.plugins.module_utils.checkpointing import (
    POD_META, criu_restore, read_image_meta)
from ansible_collections.autopod.autopod.plugins.module_utils.criu_images import PAGE_SIZE, lazy_pages
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.pod import PodSpec, validate_name
from ansible_collections.autopod.autopod.plugins.module_utils.pods import (
    check_network_free, check_paths, release, resident_memory, start_supervised, wait_supervisor)
from ansible_collections.autopod.autopod.plugins.module_utils.store import (
    RUNNING, Manifest, PodStore, make_private_dir, write_private_json)
from ansible_collections.autopod.autopod.plugins.module_utils.timing import Stopwatch

STRATEGIES = ("auto", "post-copy", "pre-copy", "stop-and-copy")
PRE_COPY_ROUNDS = 2  # pre-dumps while the pod runs; the second sends only what the first left dirty
STORAGE = ("copy", "shared")
# CRIU's page server grows a pipe to 819 pages; above pipe-max-size that fails and post-copy dies
# with "page-pipe: splice: Bad file descriptor" (DESIGN.md, "Memory").
PIPE_MAX_NEEDED = 3354624
MEMORY_MARGIN = 64 << 20


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def _pipe_max_size() -> int:
    with open("/proc/sys/fs/pipe-max-size") as handle:
        return int(handle.read())


def post_copy_problem(criu: criu_driver.Criu) -> Optional[str]:
    """Why post-copy cannot run on this host (None when it can)."""
    supported, output = criu.check("uffd-noncoop")
    if not supported:
        return "the kernel lacks non-cooperative userfaultfd (%s)" % (output.splitlines() or ["?"])[-1]
    if _pipe_max_size() < PIPE_MAX_NEEDED:
        return ("/proc/sys/fs/pipe-max-size is %d, below the %d bytes CRIU's page server needs "
                "(the autopod.autopod.criu role raises it)" % (_pipe_max_size(), PIPE_MAX_NEEDED))
    return None


def pre_copy_problem(criu: criu_driver.Criu) -> Optional[str]:
    """Why pre-copy cannot run on this host (None when it can): it needs soft-dirty page tracking."""
    supported, output = criu.check("mem_dirty_track")
    if not supported:
        return "the kernel has no soft-dirty page tracking (`criu check --feature mem_dirty_track`: %s)" \
            % ((output.splitlines() or ["no output"])[-1])
    return None


def _round_dir(number: int) -> str:
    return "pre%d" % number


def _memory_available() -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def _disk_free(path: str) -> int:
    while not os.path.exists(path):
        path = os.path.dirname(path)
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def _tree_bytes(base: str, names) -> int:
    return sum(os.lstat(os.path.join(base, n)).st_size for n in names)


# ------------------------------------------------------------------ destination


class Receiver:
    """The destination side: prepare, then serve one migration in a daemon."""

    def __init__(self, state_dir: str, criu_path: str, check_mode: bool = False) -> None:
        self.store = PodStore(state_dir)
        self.criu_path = criu_path
        self.check_mode = check_mode

    def prepare(self, definition: Dict[str, Any], storage: str, listen: str, port: int, image_dir: Optional[str],
                timeout: float, home: Optional[str]) -> Dict[str, Any]:
        spec = PodSpec.from_dict(definition)
        validate_name(spec.name)
        criu = criu_driver.Criu(self.criu_path)
        with self.store.lock():
            existing = self.store.load(spec.name)
            if existing is not None and existing.state() == RUNNING:
                raise AutopodError("pod %s already runs on this host" % spec.name)
            checks = self._checks(criu, spec, storage)
            target = os.path.normpath(image_dir or os.path.join(self.store.state_dir, "incoming", spec.name))
            if self.check_mode:
                return {"changed": True, "checks": checks, "image_dir": target}
            network.build_identity(spec, active=False)
            try:
                cgroups.create(spec.name, spec.memory_max)
                shutil.rmtree(target, ignore_errors=True)
                make_private_dir(target)
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind((listen, port))
                listener.listen(1)
            except BaseException:
                release(spec)
                raise
            token = secrets.token_hex(16)
            session = _ReceiverSession(self.store, criu, spec, storage, target, token, listener, timeout, home)
            bound_port = listener.getsockname()[1]
            daemon = int(linux.daemonize(linux.report_pid(session.serve), target + ".log", [listener.fileno()]))
            listener.close()
            return {"changed": True, "checks": checks, "address": listen, "port": bound_port, "token": token,
                    "image_dir": target, "receiver_pid": daemon, "post_copy": checks["post_copy"] is True}

    def _checks(self, criu: criu_driver.Criu, spec: PodSpec, storage: str) -> Dict[str, Any]:
        ok, output = criu.check()
        if not ok:
            raise AutopodError("this host cannot take pod %s: `criu check` failed: %s"
                               % (spec.name, (output.splitlines() or ["?"])[-1]))
        criu.ensure_compatible(tcp=True)
        check_network_free(self.store, spec)
        for mount in spec.mounts:
            if not os.path.exists(mount.source):
                raise AutopodError("this host cannot take pod %s: mount source %s does not exist here"
                                   % (spec.name, mount.source))
        if storage == "shared":
            check_paths(spec)
        elif os.path.exists(spec.rootfs) and not os.path.isdir(spec.rootfs):
            raise AutopodError("this host cannot take pod %s: %s exists here and is not a directory"
                               % (spec.name, spec.rootfs))
        problem = post_copy_problem(criu)
        return {"criu": criu.facts(), "post_copy": problem or True, "memory_available": _memory_available()}


class _ReceiverSession:
    """One migration, on the destination, in the receiver daemon."""

    def __init__(self, store: PodStore, criu: criu_driver.Criu, spec: PodSpec, storage: str, image_dir: str,
                 token: str, listener: socket.socket, timeout: float, home: Optional[str]) -> None:
        self.store, self.criu, self.spec, self.storage = store, criu, spec, storage
        self.image_dir, self.token, self.listener, self.timeout, self.home = image_dir, token, listener, timeout, home
        self.address = listener.getsockname()[0]
        self.page_server: Optional[subprocess.Popen] = None
        self.lazy: Optional[subprocess.Popen] = None
        self.restored = False
        self.pre_copy_rounds = 0

    def _log(self, message: str) -> None:
        os.write(1, ("%s %s\n" % (time.strftime("%H:%M:%S"), message)).encode())

    def serve(self) -> None:
        """The daemon's body: the listening socket is the one descriptor it has from the module."""
        channel = None
        try:
            self.listener.settimeout(self.timeout)
            sock, peer = self.listener.accept()
            self.listener.close()
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            channel = transfer.Channel(sock)
            self._log("source %s connected" % (peer,))
            self._conversation(channel)
        except Exception as exc:  # every failure is reported to the source and undone here
            self._log("failed: %s" % exc)
            if channel is not None:
                try:
                    channel.send({"type": "error", "msg": "destination: %s" % exc})
                except (OSError, AutopodError):
                    pass
            if not self.restored:
                self._undo()
        finally:
            if channel is not None:
                channel.close()
        self._finish()

    def _conversation(self, channel: transfer.Channel) -> None:
        hello = channel.expect("hello")
        if not transfer.tokens_match(self.token, hello.get("token")) or hello.get("pod") != self.spec.name:
            raise AutopodError("the connecting host did not present this migration's token")
        needed = int(hello.get("memory", 0)) + MEMORY_MARGIN
        if _memory_available() < needed:
            raise AutopodError("not enough memory here: %d MiB available, %d MiB needed"
                               % (_memory_available() >> 20, needed >> 20))
        channel.send({"type": "ready", "post_copy": post_copy_problem(self.criu) is None})
        while True:
            message = channel.receive()
            kind = message.get("type")
            if kind == "cpuinfo":
                self._check_cpu(channel)
            elif kind == "rootfs_scan":
                channel.send({"type": "rootfs_state", "entries": transfer.scan_tree(self.spec.rootfs)})
            elif kind == "rootfs":
                self._receive_rootfs(channel, message)
            elif kind == "page_server":
                self._start_page_server(channel, message.get("round"))
            elif kind == "round_done":
                self._wait_page_server()
                channel.send({"type": "round_ok"})
            elif kind == "images":
                self._receive_images(channel)
            elif kind == "restore":
                try:
                    self._restore(channel, message)
                except AutopodError as exc:
                    self._undo()
                    channel.send({"type": "error", "msg": "restore on the destination failed: %s" % exc.msg})
            elif kind == "send_back":
                channel.send({"type": "images_back"})
                channel.send_tree(self.image_dir, _all_entries(self.image_dir))
            elif kind == "bye":
                return

    def _check_cpu(self, channel: transfer.Channel) -> None:
        cpu_dir = self.image_dir + ".cpu"
        make_private_dir(cpu_dir)
        try:
            channel.receive_tree(cpu_dir)
            result = subprocess.run(criu_driver.cpuinfo_argv(self.criu.path, "check", cpu_dir),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                    check=False)
            if result.returncode != 0:
                raise AutopodError("this CPU lacks features the pod's source CPU has (`criu cpuinfo check`: %s)"
                                   % criu_driver.log_errors(os.path.join(cpu_dir, "cpuinfo-check.log")))
        finally:
            shutil.rmtree(cpu_dir, ignore_errors=True)
        channel.send({"type": "cpu_ok"})

    def _receive_rootfs(self, channel: transfer.Channel, message: Dict[str, Any]) -> None:
        needed = int(message.get("bytes", 0))
        if _disk_free(self.spec.rootfs) < needed:
            raise AutopodError("not enough disk for the rootfs at %s: %d MiB free, %d MiB needed"
                               % (self.spec.rootfs, _disk_free(self.spec.rootfs) >> 20, needed >> 20))
        os.makedirs(self.spec.rootfs, exist_ok=True)
        transfer.apply_deletions(self.spec.rootfs, message.get("delete", []))
        channel.receive_tree(self.spec.rootfs)
        channel.send({"type": "rootfs_ok"})

    def _start_page_server(self, channel: transfer.Channel, pre_copy_round: Optional[int]) -> None:
        """A page server for the final dump, or for pre-copy round N (its own subdirectory). Each
        pre-copy image set links the one before it, the final set the last round's."""
        number = int(pre_copy_round or 0)
        images, parent = self.image_dir, None
        if number:
            images = make_private_dir(os.path.join(self.image_dir, _round_dir(number)))
            parent = os.path.join("..", _round_dir(number - 1)) if number > 1 else None
        elif self.pre_copy_rounds:
            parent = _round_dir(self.pre_copy_rounds)
        self.pre_copy_rounds = max(self.pre_copy_rounds, number)
        port = _free_port(self.address)
        work = make_private_dir(self.image_dir + ".work")
        argv = criu_driver.page_server_argv(self.criu.path, images, work, (self.address, port), parent)
        self.page_server = _start_when_ready(argv, os.path.join(work, "page-server.log"), "page-server")
        channel.send({"type": "page_server_ready", "port": port})

    def _wait_page_server(self) -> None:
        if self.page_server is not None and self.page_server.wait(60) != 0:
            raise AutopodError("the page server ended with %d (log: %s.work/page-server.log)"
                               % (self.page_server.returncode, self.image_dir))
        self.page_server = None

    def _receive_images(self, channel: transfer.Channel) -> None:
        channel.receive_tree(self.image_dir)
        self._wait_page_server()
        channel.send({"type": "images_ok"})

    def _restore(self, channel: transfer.Channel, message: Dict[str, Any]) -> None:
        watch = Stopwatch()
        meta = read_image_meta(self.image_dir)
        tcp = bool(meta.get("tcp_established", True))
        manifest = Manifest(spec=self.spec, generation=int(meta.get("generation", 0)), home=self.home)
        work = self.store.work_dir(self.spec.name)
        lazy_source = message.get("lazy_source")
        if lazy_source:
            self.lazy = _start_lazy_pages(self.criu, self.image_dir, work, (lazy_source[0], int(lazy_source[1])))
            watch.lap("lazy_pages_start")

        def run_restore(netns_path: str, _procs: str) -> int:
            return criu_restore(self.criu, self.spec, self.image_dir, work, netns_path, tcp, lazy=bool(lazy_source))

        with self.store.lock():
            start_supervised(self.store, manifest, run_restore, watch,
                             after_report=lambda: network.announce(self.spec), identity_prepared=True)
        self.restored = True
        channel.send({"type": "restored", "init_pid": manifest.init_pid, "timings": watch.result(),
                      "stats": criu_driver.read_stats(work, "restore")})

    def _undo(self) -> None:
        for process in (self.page_server, self.lazy):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        release(self.spec)

    def _finish(self) -> None:
        """After a post-copy restore, stay until every page has arrived; then remove the images."""
        if self.lazy is not None and self.restored:
            self.lazy.wait()
            self._log("lazy-pages ended with %s" % self.lazy.returncode)
        if self.restored:
            shutil.rmtree(self.image_dir, ignore_errors=True)
            shutil.rmtree(self.image_dir + ".work", ignore_errors=True)
        self._log("receiver done (restored: %s)" % self.restored)


def _start_when_ready(argv, log: str, what: str) -> subprocess.Popen:
    """Start a CRIU daemon and wait until it says, through --status-fd, that it is ready.

    (Probing a page server's port instead would use up the one connection it accepts.)
    """
    read_fd, write_fd = os.pipe()
    with criu_driver.private_umask():
        process = subprocess.Popen(argv + ["--status-fd", str(write_fd)], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write_fd,))
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as status:
        if not status.read(1):
            process.wait()
            raise AutopodError("criu %s did not start (%s)" % (what, criu_driver.log_errors(log)))
    return process


def _start_lazy_pages(criu: criu_driver.Criu, image_dir: str, work: str, source: Tuple[str, int]) -> subprocess.Popen:
    """Start `criu lazy-pages`, ready for the restore to talk to it."""
    return _start_when_ready(criu_driver.lazy_pages_argv(criu.path, image_dir, work, source),
                             os.path.join(work, "lazy-pages.log"), "lazy-pages")


# ------------------------------------------------------------------ source


class _Dump:
    """A running `criu dump` on the source (post-copy: it keeps serving pages after the freeze)."""

    def __init__(self, argv, work: str, status_fd: Optional[int]) -> None:
        self.work = work
        with criu_driver.private_umask():
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL,
                                            pass_fds=(status_fd,) if status_fd is not None else ())

    def failed(self) -> AutopodError:
        return AutopodError("criu dump failed (exit %s): %s (full log: %s)" % (
            self.process.returncode, criu_driver.log_errors(os.path.join(self.work, "dump.log")),
            os.path.join(self.work, "dump.log")))


def resolve_strategy(asked: str, post_copy_local: Optional[str], post_copy_remote_ok: bool,
                     pre_copy_local: Optional[str]) -> str:
    """The strategy to use: the one asked for if possible (else an error), or for `auto` the best one
    possible: post-copy (shortest pause), else pre-copy (only the source needs soft-dirty tracking),
    else stop-and-copy."""
    post_copy = post_copy_local or (None if post_copy_remote_ok else "the destination cannot do post-copy")
    problems = {"post-copy": post_copy, "pre-copy": pre_copy_local, "stop-and-copy": None}
    if asked != "auto":
        if problems[asked]:
            raise AutopodError("%s is not possible: %s" % (asked, problems[asked]))
        return asked
    return next(strategy for strategy in ("post-copy", "pre-copy", "stop-and-copy") if not problems[strategy])


def _all_entries(base: str) -> List[str]:
    """Every path under `base`, relative, each directory before what it holds."""
    entries = []
    for directory, dirs, files in os.walk(base):
        relative = os.path.relpath(directory, base)
        for name in sorted(dirs) + sorted(files):
            entries.append(os.path.normpath(os.path.join(relative, name)))
        dirs.sort()
    return entries


def migrate(state_dir: str, criu_path: str, name: str, destination: str, port: int, token: str, storage: str,
            strategy: str, image_dir: Optional[str], source_address: Optional[str]) -> Dict[str, Any]:
    store = PodStore(state_dir)
    name = validate_name(name)
    criu = criu_driver.Criu(criu_path)
    watch = Stopwatch()
    with store.lock():
        watch.lap("lock")
        manifest = store.load(name)
        if manifest is None or manifest.state() != RUNNING:
            raise AutopodError("pod %s is not running on this host (%s): there is nothing to move"
                               % (name, manifest.state() if manifest else "absent"))
        criu.ensure_compatible(tcp=True)
        session = _SourceSession(store, criu, manifest, storage, image_dir, watch)
        return session.run(destination, port, token, strategy, source_address)


class _SourceSession:
    def __init__(self, store: PodStore, criu: criu_driver.Criu, manifest: Manifest, storage: str,
                 image_dir: Optional[str], watch: Stopwatch) -> None:
        self.store, self.criu, self.manifest, self.storage, self.watch = store, criu, manifest, storage, watch
        self.spec = manifest.spec
        self.image_dir = os.path.normpath(image_dir or os.path.join(store.state_dir, "outgoing", self.spec.name))
        self.channel: Optional[transfer.Channel] = None
        self.dump: Optional[_Dump] = None
        self.bytes = {"rootfs": 0, "images": 0, "pages": 0}
        self.pre_copy_rounds: List[int] = []  # pages sent by each pre-copy round

    def run(self, destination: str, port: int, token: str, strategy: str,
            source_address: Optional[str]) -> Dict[str, Any]:
        self.channel = transfer.connect(destination, port, timeout=30)
        self.watch.lap("connect")
        try:
            return self._run(destination, token, strategy, source_address)
        finally:
            self.channel.close()

    def _run(self, destination: str, token: str, strategy: str, source_address: Optional[str]) -> Dict[str, Any]:
        channel = self.channel
        channel.send({"type": "hello", "token": token, "pod": self.spec.name,
                      "memory": resident_memory(self.spec.name) or 0})
        ready = channel.expect("ready")
        chosen = resolve_strategy(strategy, post_copy_problem(self.criu), bool(ready.get("post_copy")),
                                  pre_copy_problem(self.criu))
        self.watch.lap("hello")
        self._check_cpu()
        self.watch.lap("cpu_check")
        synced = None
        if self.storage == "copy":
            synced = self._sync_rootfs(None)
            self.watch.lap("rootfs_presync")
        shutil.rmtree(self.image_dir, ignore_errors=True)
        make_private_dir(self.image_dir)
        if chosen == "pre-copy":
            self._pre_copy(channel.sock.getpeername()[0])
            self.watch.lap("pre_copy")
        # Up to here the pod has not stopped: any failure leaves it running as it was.
        local_address = source_address or channel.sock.getsockname()[0]
        frozen_at = time.monotonic()
        lazy_port = self._dump(chosen, local_address)
        self.watch.lap("dump")
        asked_to_restore = False
        try:
            if self.storage == "copy":
                self._sync_rootfs(synced)
                self.watch.lap("rootfs_final")
            self._send_images(chosen)
            self.watch.lap("images")
            channel.send({"type": "restore", "lazy_source": [local_address, lazy_port] if lazy_port else None})
            asked_to_restore = True
            reply = channel.expect("restored")
        except AutopodError as exc:
            if asked_to_restore and not isinstance(exc, transfer.RemoteError):
                raise AutopodError("lost the destination after asking it to restore pod %s (%s): the pod may run "
                                   "there; check with pod_info before anything else. This host keeps its images at "
                                   "%s" % (self.spec.name, exc.msg, self.image_dir))
            return self._fall_back(exc, chosen, lazy_port)
        downtime_ms = round((time.monotonic() - frozen_at) * 1000, 1)
        self.watch.lap("restore_remote")
        channel.send({"type": "bye"})
        if self.dump is not None:
            self.dump.process.wait()  # post-copy: every page has been served
            self.watch.lap("pages")
        dump_stats = criu_driver.read_stats(self._work, "dump")
        if chosen == "post-copy":
            # CRIU's stats of a lazy dump do not count the pages served; its pagemaps do
            self.bytes["pages"] = lazy_pages(self.image_dir) * PAGE_SIZE
            frozen_ms = downtime_ms  # frozen here from the dump's start until it runs there
        else:
            self.bytes["pages"] = (dump_stats.get("pages_written", 0) + sum(self.pre_copy_rounds)) * PAGE_SIZE
            frozen_ms = round(dump_stats.get("frozen_time_us", 0) / 1000, 1)
        self._leave()
        self.watch.lap("cleanup")
        return {"changed": True, "strategy": chosen, "storage": self.storage, "destination": destination,
                "downtime_ms": downtime_ms, "frozen_ms": frozen_ms,
                "pre_copy_pages": self.pre_copy_rounds, "final_dump_pages": dump_stats.get("pages_written", 0),
                "bytes": dict(self.bytes, channel=channel.sent + channel.received,
                              total=self.bytes["pages"] + channel.sent + channel.received),
                "timings": self.watch.result(), "destination_report": reply,
                "actions": ["moved pod %s to %s (%s, %s storage)" % (self.spec.name, destination, chosen,
                                                                     self.storage)]}

    def _check_cpu(self) -> None:
        cpu_dir = make_private_dir(self.image_dir + ".cpu")
        try:
            result = subprocess.run(criu_driver.cpuinfo_argv(self.criu.path, "dump", cpu_dir),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
            if result.returncode != 0:
                raise AutopodError("criu cpuinfo dump failed: %s"
                                   % criu_driver.log_errors(os.path.join(cpu_dir, "cpuinfo-dump.log")))
            self.channel.send({"type": "cpuinfo"})
            self.channel.send_tree(cpu_dir, ["cpuinfo.img"])
            self.channel.expect("cpu_ok")
        finally:
            shutil.rmtree(cpu_dir, ignore_errors=True)

    def _sync_rootfs(self, remote: Optional[Dict[str, transfer.Fingerprint]]) -> Dict[str, transfer.Fingerprint]:
        """Send the rootfs delta; returns what the destination has now. The first pass asks the destination
        what it has; the second (with the pod frozen) knows it is what the first pass left there."""
        if remote is None:
            self.channel.send({"type": "rootfs_scan"})
            remote = {k: tuple(v) for k, v in self.channel.expect("rootfs_state")["entries"].items()}
        local = transfer.scan_tree(self.spec.rootfs)
        send, delete = transfer.tree_delta(local, remote)
        self.channel.send({"type": "rootfs", "delete": delete, "bytes": _tree_bytes(self.spec.rootfs, send)})
        self.bytes["rootfs"] += self.channel.send_tree(self.spec.rootfs, send)
        self.channel.expect("rootfs_ok")
        return local

    def _pre_copy(self, peer: str) -> None:
        """Pre-dump rounds while the pod runs, each into its own page server on the destination: the
        first sends all the pod's memory, each next one only what was dirtied since (soft-dirty
        tracking). A failure here has not stopped the pod."""
        work = self.store.work_dir(self.spec.name)
        inode = os.stat("/proc/%d/ns/net" % self.manifest.init_pid).st_ino
        for number in range(1, PRE_COPY_ROUNDS + 1):
            self.channel.send({"type": "page_server", "round": number})
            port = self.channel.expect("page_server_ready")["port"]
            images = make_private_dir(os.path.join(self.image_dir, _round_dir(number)))
            parent = os.path.join("..", _round_dir(number - 1)) if number > 1 else None
            self.criu.run(criu_driver.pre_dump_argv(self.criu.path, self.manifest.init_pid, images, work, inode,
                                                    self.spec.mounts, (peer, port), parent),
                          work, "pre-dump.log", "pre-dump")
            self.channel.send({"type": "round_done"})
            self.channel.expect("round_ok")
            self.pre_copy_rounds.append(criu_driver.read_stats(work, "dump").get("pages_written", 0))

    @property
    def _work(self) -> str:
        return os.path.join(self.store.state_dir, "work", self.spec.name)

    def _dump(self, strategy: str, local_address: str) -> Optional[int]:
        """Freeze and dump; returns the post-copy page server's port (None for stop-and-copy)."""
        work = self.store.work_dir(self.spec.name)
        write_private_json(os.path.join(self.image_dir, POD_META), {
            "spec": self.spec.to_dict(), "tcp_established": True, "generation": self.manifest.generation,
            "source_host": socket.gethostname(), "kernel": os.uname().release,
            "criu_version": criu_driver.version_string(self.criu.version), "checkpointed_at": time.time(),
            "lazy": strategy == "post-copy"})
        inode = os.stat("/proc/%d/ns/net" % self.manifest.init_pid).st_ino
        if strategy == "post-copy":
            port = _free_port(local_address)
            read_fd, write_fd = os.pipe()
            argv = criu_driver.dump_argv(self.criu.path, self.manifest.init_pid, self.image_dir, work, inode,
                                         self.spec.mounts, True, False, lazy_server=(local_address, port),
                                         status_fd=write_fd)
            self.dump = _Dump(argv, work, write_fd)
            os.close(write_fd)
            with os.fdopen(read_fd, "rb") as status:
                if not status.read(1):  # CRIU writes a byte once all but the pages are dumped
                    self.dump.process.wait()
                    raise self._dump_failed()
            return port
        self.channel.send({"type": "page_server"})
        remote_port = self.channel.expect("page_server_ready")["port"]
        parent = _round_dir(len(self.pre_copy_rounds)) if self.pre_copy_rounds else None
        argv = criu_driver.dump_argv(self.criu.path, self.manifest.init_pid, self.image_dir, work, inode,
                                     self.spec.mounts, True, False,
                                     page_server=(self.channel.sock.getpeername()[0], remote_port), parent=parent)
        self.dump = _Dump(argv, work, None)
        if self.dump.process.wait() != 0:
            raise self._dump_failed()
        self.dump = None
        return None

    def _dump_failed(self) -> AutopodError:
        error = self.dump.failed()
        self.dump = None
        still = "is still running" if self.manifest.is_running() else "is NOT running any more"
        return AutopodError("the move of pod %s failed before it left; it %s here: %s"
                            % (self.spec.name, still, error.msg))

    def _send_images(self, strategy: str) -> None:
        self.channel.send({"type": "images", "lazy": strategy == "post-copy"})
        # the image files only: pre-copy rounds' directories (and the link to the last) are already there
        paths = [os.path.join(self.image_dir, name) for name in sorted(os.listdir(self.image_dir))]
        files = [os.path.basename(path) for path in paths if os.path.isfile(path) and not os.path.islink(path)]
        self.bytes["images"] += self.channel.send_tree(self.image_dir, files)
        self.channel.expect("images_ok")

    def _fall_back(self, failure: AutopodError, strategy: str, lazy_port: Optional[int]) -> Dict[str, Any]:
        """The pod is frozen here and not running there: bring it back here from the same images.

        Post-copy: the frozen pod's memory is still served by this host's dump, so a local
        `criu lazy-pages` fetches it from there. Stop-and-copy: the pages went to the destination,
        which sends its images back.
        """
        try:
            if strategy != "post-copy":
                self.channel.send({"type": "send_back"})
                self.channel.expect("images_back")
                self.channel.receive_tree(self.image_dir)
            self.channel.send({"type": "bye"})
        except AutopodError as lost:
            if strategy != "post-copy":
                raise AutopodError("the move of pod %s failed (%s) and its images could not be fetched back (%s); "
                                   "they are on the destination" % (self.spec.name, failure.msg, lost.msg))
        try:
            source = (self.channel.sock.getsockname()[0], lazy_port) if lazy_port else None
            self._restore_here(source)
        except AutopodError as second:
            raise AutopodError("the move of pod %s failed (%s), and so did restoring it here (%s); its images are "
                               "kept at %s" % (self.spec.name, failure.msg, second.msg, self.image_dir))
        raise AutopodError("the move of pod %s failed: %s; the pod was restored here from the same images and "
                           "runs as before" % (self.spec.name, failure.msg))

    def _restore_here(self, lazy_source: Optional[Tuple[str, int]]) -> None:
        work = self.store.work_dir(self.spec.name, "fallback")
        lazy = _start_lazy_pages(self.criu, self.image_dir, work, lazy_source) if lazy_source else None

        def run_restore(netns_path: str, _procs: str) -> int:
            return criu_restore(self.criu, self.spec, self.image_dir, work, netns_path, True, lazy=bool(lazy))

        # The frozen original still holds the old namespace; build_identity replaces it. It is not killed
        # here: its dump serves the pages and kills it once they are all across.
        start_supervised(self.store, self.manifest, run_restore, after_report=lambda: network.announce(self.spec))
        if lazy is not None:
            lazy.wait()
        if self.dump is not None:
            self.dump.process.wait()
            self.dump = None
        shutil.rmtree(self.image_dir, ignore_errors=True)

    def _leave(self) -> None:
        """The pod lives on the destination now: release what it held here, and forget it."""
        wait_supervisor(self.manifest)
        release(self.spec)
        shutil.rmtree(self.image_dir, ignore_errors=True)
        self.store.remove(self.spec.name)
