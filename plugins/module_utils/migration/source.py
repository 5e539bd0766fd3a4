# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The source side of a live move (module pod_migrate): the conversation of protocol.py, and what
the source decides when something fails.

The rule: until the destination confirms that the pod runs there (RUNNING, and for post-copy
LAZY_DONE), the source keeps a stopped copy and revives it on any failure. Once GO is sent, the
destination may run the pod; from then on the source revives its copy only if the destination says
it failed, or, for post-copy, if pages the destination needs never left this host (it cannot have
the whole pod) and the destination's own stall limit has passed (it has killed its copy). A result
always names where the pod runs.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.autopod.autopod.plugins.module_utils import criu as criu_driver
from ansible_collections.autopod.autopod.plugins.module_utils import rootfs_delta, transfer
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.migration import protocol as P
from ansible_collections.autopod.autopod.plugins.module_utils.migration.pause_model import ANOTHER_ROUND, pre_copy_verdict
from ansible_collections.autopod.autopod.plugins.module_utils.migration.requests import MoveRequest
from ansible_collections.autopod.autopod.plugins.module_utils.migration.source_pod import DumpFailed, SourcePod
from ansible_collections.autopod.autopod.plugins.module_utils.migration.streams import Relay, criu_socket_pair
from ansible_collections.autopod.autopod.plugins.module_utils.pod import validate_name
from ansible_collections.autopod.autopod.plugins.module_utils.store import RUNNING, PodStore
from ansible_collections.autopod.autopod.plugins.module_utils.timing import Stopwatch


class MoveFailed(AutopodError):
    """A move that did not happen, or did not complete; `details` say where the pod runs now."""


class Interrupted(Exception):
    """SIGTERM during a move: the move ends as a failure, so that the pod is revived or handed over."""


class SourceConversation:
    """The source's half of one move, over a control channel; `open_stream(id)` opens a page stream."""

    def __init__(self, channel: transfer.Channel, pod: SourcePod, token: str, limits: P.Limits,
                 open_stream: Callable[[str], socket.socket], destination: str) -> None:
        self.channel, self.pod, self.token, self.limits = channel, pod, token, limits
        self.open_stream, self.destination = open_stream, destination
        self.watch = Stopwatch()
        self.relay: Optional[Relay] = None
        self.pre_copy_pages: List[int] = []
        self.pre_copy_judged: Dict[str, float] = {}  # the last round's verdict: the freeze's expected pause, the dirty rate
        self.bytes = {"rootfs": 0, "images": 0}
        self.pre_copy_bytes = 0  # the pages the pre-dump rounds sent (each round has its own relay)
        self.frozen_at: Optional[float] = None
        self.storage = ""
        self.running_at: Optional[float] = None

    # ---- the conversation ----

    def run(self, asked: str, storage: str, post_copy_here: Optional[str], pre_copy_here: Optional[str]) -> Dict[str, Any]:
        self.storage = storage
        ready = self._ask(P.hello(self.token, self.pod.spec.name, P.STREAM_CONTROL), P.READY)
        strategy = P.resolve_strategy(asked, post_copy_here, bool(ready.get("post_copy")), pre_copy_here,
                                      self.pod.memory(), self.limits.max_pause_ms)
        self._ask({"type": P.PLAN, "strategy": strategy, "storage": storage, "memory": self.pod.memory()}, P.PLAN_OK)
        self._check_cpu()
        synced = self._sync_rootfs(None) if storage == "copy" else None
        self.pod.prepare_images()
        if strategy == P.PRE_COPY:
            self._pre_copy()
        self.watch.lap("before_freeze")
        self._freeze(strategy)
        try:
            self._while_frozen(strategy, synced)
        except (AutopodError, Interrupted) as exc:
            return self._revive_after(exc, strategy, sent_go=False)
        return self._hand_over(strategy)

    def _ask(self, message: Dict[str, Any], answer: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        self.channel.send(message)
        with self.channel.wait_for(timeout or self.limits.reply):
            return self.channel.expect(answer)

    def _check_cpu(self) -> None:
        directory = self.pod.image_dir + ".cpu"
        try:
            self.pod.cpuinfo(directory)
            self.channel.send({"type": P.CPUINFO})
            self.channel.send_tree(directory, ["cpuinfo.img"])
            with self.channel.wait_for(self.limits.reply):
                self.channel.expect(P.CPU_OK)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        self.watch.lap("cpu_check")

    def _sync_rootfs(self, remote: Optional[Dict[str, rootfs_delta.Fingerprint]]) -> Dict[str, rootfs_delta.Fingerprint]:
        """Send the rootfs delta; returns what the destination has now. The first pass asks the destination
        what it has; the second (frozen) knows it is what the first left there."""
        if remote is None:
            state = self._ask({"type": P.ROOTFS_SCAN}, P.ROOTFS_STATE)
            remote = {k: tuple(v) for k, v in state["entries"].items()}
        local = self.pod.scan_rootfs()
        send, delete = rootfs_delta.tree_delta(local, remote)
        size = sum(os.lstat(os.path.join(self.pod.spec.rootfs, n)).st_size for n in send)
        self.channel.send({"type": P.ROOTFS, "delete": delete, "bytes": size})
        with self.channel.wait_for(self.limits.stall):
            self.bytes["rootfs"] += self.channel.send_tree(self.pod.spec.rootfs, send)
            self.channel.expect(P.ROOTFS_OK)
        self.watch.lap("rootfs_presync" if self.frozen_at is None else "rootfs_final")
        return local

    def _stream(self, number: int, lazy: bool = False) -> socket.socket:
        """Ask for a page stream and open it; returns the end CRIU inherits (the relay keeps the other)."""
        self._ask({"type": P.PAGES, "round": number, "lazy": lazy}, P.PAGES_READY)
        criu_end, relay_end = criu_socket_pair()
        self.relay = Relay(relay_end, self.open_stream(P.page_stream_id(number)), self.limits.stall,
                           "lazy page" if lazy else "page").start()
        return criu_end

    def _end_stream(self, number: int, deadline: float) -> None:
        if not self.relay.wait(max(deadline - time.monotonic(), 0)) or self.relay.error:
            raise AutopodError(self.relay.error or "the page stream did not end in time")
        self._ask({"type": P.PAGES_SENT, "round": number}, P.PAGES_OK, max(deadline - time.monotonic(), 1))

    def _pre_copy(self) -> None:
        """Pre-dump rounds while the pod runs, as many as pause_model.pre_copy_verdict asks for; it raises
        before the freeze when the pod writes too fast for a pause budget."""
        rounds: List[Tuple[int, float]] = []
        verdict = ANOTHER_ROUND
        while verdict == ANOTHER_ROUND:
            number, started = len(rounds) + 1, time.monotonic()
            criu_end = self._stream(number)
            try:
                self.pre_copy_pages.append(self.pod.pre_dump(number, criu_end))
            finally:
                criu_end.close()
            self._end_stream(number, time.monotonic() + self.limits.reply)
            self.pre_copy_bytes += self.relay.to_remote
            self.watch.lap("pre_copy_%d" % number)
            rounds.append((self.pre_copy_pages[-1], time.monotonic() - started))
            verdict, expected_ms, rate = pre_copy_verdict(rounds, self.limits.max_pause_ms)
            self.pre_copy_judged = {"expected_pause_ms": round(expected_ms), "dirty_mib_s": round(rate, 1)}

    def _freeze(self, strategy: str) -> None:
        lazy = strategy == P.POST_COPY
        criu_end = self._stream(0, lazy)
        self.watch.lap("page_stream")
        self.frozen_at = time.monotonic()
        try:
            self.pod.freeze(strategy, criu_end, len(self.pre_copy_pages), self.frozen_at + self.limits.max_freeze)
        except DumpFailed as exc:
            self._send_quietly({"type": P.ABORT})
            raise MoveFailed("the move of pod %s failed before it left: %s" % (self.pod.spec.name, exc.msg),
                             result="not_moved", runs_on="source")
        finally:
            criu_end.close()
        self.watch.lap("dump")

    def _while_frozen(self, strategy: str, synced: Optional[Dict[str, rootfs_delta.Fingerprint]]) -> None:
        deadline = self.frozen_at + self.limits.max_freeze
        if synced is not None:
            self._sync_rootfs(synced)
        if strategy != P.POST_COPY:
            self._end_stream(0, deadline)
            self.watch.lap("pages")
        self.channel.send({"type": P.IMAGES})
        with self.channel.wait_for(max(deadline - time.monotonic(), 1)):
            self.bytes["images"] += self.channel.send_tree(self.pod.image_dir, self.pod.image_files())
            self.channel.expect(P.IMAGES_OK)
        self.watch.lap("images")
        self._ask({"type": P.RESTORE}, P.HELD, max(deadline - time.monotonic(), 1))
        self.watch.lap("restore_remote")
        if time.monotonic() > deadline:
            raise AutopodError("the pod was frozen longer than max_freeze (%d s)" % self.limits.max_freeze)

    # ---- after the pod is held on the destination ----

    def _hand_over(self, strategy: str) -> Dict[str, Any]:
        try:
            running = self._ask({"type": P.GO}, P.RUNNING, self.limits.reply)
        except transfer.RemoteError as exc:  # the destination could not resume it, and killed its copy
            return self._revive_after(exc, strategy, sent_go=True)
        except (AutopodError, Interrupted) as exc:
            return self._unconfirmed(exc, strategy)
        self.running_at = time.monotonic()
        self.watch.lap("resume_remote")
        if strategy == P.POST_COPY:
            self.relay.watch_peer()  # the destination's lazy-pages now asks for pages until it has them all
        if strategy == P.POST_COPY:
            failure = self._wait_for_pages()
            if failure is not None:
                return failure
        self.pod.end(self.destination)
        self._send_quietly({"type": P.COMMIT})
        self.watch.lap("end_here")
        return self._result(strategy, running, "moved", "destination")

    def _wait_for_pages(self) -> Optional[Dict[str, Any]]:
        """Post-copy: wait until the destination has every page. None when it has; else the failure result."""
        while True:
            try:
                with self.channel.wait_for(1.0):
                    message = self.channel.receive()
            except transfer.ChannelTimeout:
                if self.relay.error is None:
                    continue
                return self._lost_destination(AutopodError(self.relay.error))
            except transfer.RemoteError as exc:
                return self._revive_after(exc, P.POST_COPY, sent_go=True)
            except (AutopodError, Interrupted) as exc:
                return self._lost_destination(exc)
            if message.get("type") == P.LAZY_DONE:
                self.watch.lap("pages")
                return None
            if message.get("type") == P.LAZY_FAILED:  # the destination has killed its copy
                return self._revive_after(AutopodError(message.get("msg", "the page transfer failed")),
                                          P.POST_COPY, sent_go=True)

    def _lost_destination(self, exc: BaseException) -> Dict[str, Any]:
        """Post-copy, the destination went silent while the pod ran there. If pages it needs never left this
        host, it cannot have the whole pod, and once its own stall limit has passed it has killed its copy:
        revive here. If every page left, it may have it: hand over without confirmation."""
        if self.relay.to_remote >= self.pod.lazy_bytes():
            return self._unconfirmed(exc, P.POST_COPY)
        self.relay.fail("giving up on the destination")
        # The destination cuts its copy once nothing has come from here for `stall` seconds.
        time.sleep(max(self.limits.stall + self.limits.fence_margin - self.relay.sent_ago(), 0))
        return self._revive_after(exc, P.POST_COPY, sent_go=True)

    def _unconfirmed(self, exc: BaseException, strategy: str) -> Dict[str, Any]:
        """GO was sent and the destination said nothing more: it holds the only copy that may run."""
        self.pod.end(self.destination)
        raise MoveFailed("pod %s was handed to %s, which did not confirm (%s); the copy here is gone, so the pod "
                         "runs there or nowhere: check with pod_info on %s" % (
                             self.pod.spec.name, self.destination, _msg(exc), self.destination),
                         result="unconfirmed", runs_on="destination", **self._figures(strategy))

    def _revive_after(self, exc: BaseException, strategy: str, sent_go: bool) -> Dict[str, Any]:
        if not sent_go:
            self._send_quietly({"type": P.ABORT})
        ran_there = self.running_at is not None
        lost_ms = round((time.monotonic() - self.running_at) * 1000) if ran_there else 0
        revived = self.pod.revive()
        what = ("rolled back: the pod ran on %s for %d ms, and whatever it did there is lost; it runs here again "
                "from the moment of its freeze (clients whose connections moved on there may be reset)"
                % (self.destination, lost_ms)) if ran_there else "the pod was revived here and runs as before"
        raise MoveFailed("the move of pod %s to %s failed: %s; %s" % (self.pod.spec.name, self.destination, _msg(exc), what),
                         result="rolled_back" if ran_there else "not_moved", runs_on="source", lost_ms=lost_ms,
                         revived=revived, **self._figures(strategy))

    def _send_quietly(self, message: Dict[str, Any]) -> None:
        try:
            with self.channel.wait_for(2.0):
                self.channel.send(message)
        except AutopodError:
            pass

    def _figures(self, strategy: str) -> Dict[str, Any]:
        return {"strategy": strategy, "storage": self.storage, "timings": self.watch.result(),
                "pre_copy_pages": self.pre_copy_pages, "pre_copy_judged": self.pre_copy_judged}

    def _result(self, strategy: str, running: Dict[str, Any], result: str, runs_on: str) -> Dict[str, Any]:
        frozen_ms = round((self.running_at - self.frozen_at) * 1000, 1)
        stats = self.pod.dump_stats()
        pages = self.pre_copy_bytes + (self.relay.to_remote if self.relay else 0)
        figures = self._figures(strategy)
        figures.update({
            "changed": True, "result": result, "runs_on": runs_on, "destination": self.destination,
            "downtime_ms": frozen_ms, "frozen_ms": frozen_ms,  # a lazy dump's own clock runs until its last page is served
            "criu_frozen_ms": None if strategy == P.POST_COPY else round(stats.get("frozen_time_us", 0) / 1000, 1),
            "final_dump_pages": stats.get("pages_written", 0), "destination_report": running,
            "frozen_phases_ms": frozen_phases(figures["timings"], running.get("go_timings", {}), strategy),
            "bytes": dict(self.bytes, pages=pages, channel=self.channel.sent + self.channel.received,
                          total=pages + self.channel.sent + self.channel.received)})
        return figures


def frozen_phases(timings: Dict[str, float], go_timings: Dict[str, float], strategy: str) -> Dict[str, float]:
    """Where the frozen time went, in ms: freezing and dumping the tasks, the rootfs's second pass, the pages
    (unless they follow the pod), the images, the restore up to its hold, putting the pod on its bridge
    (attach and window probes, on the destination), and the rest of the hand-over (the GO round trip and
    the resume). They add up to `frozen_ms`, give or take rounding."""
    network = go_timings.get("attach_ms", 0) + go_timings.get("window_probes_ms", 0)
    return {"dump": timings.get("dump_ms", 0), "rootfs_delta": timings.get("rootfs_final_ms", 0),
            "pages": 0 if strategy == P.POST_COPY else timings.get("pages_ms", 0),
            "images": timings.get("images_ms", 0), "restore": timings.get("restore_remote_ms", 0),
            "network": round(network, 1), "resume": round(max(timings.get("resume_remote_ms", 0) - network, 0), 1)}


def _msg(exc: BaseException) -> str:
    return getattr(exc, "msg", None) or str(exc) or type(exc).__name__


def _interrupt(_signum: int, _frame: object) -> None:
    raise Interrupted("the move was interrupted (SIGTERM)")


def migrate(request: MoveRequest) -> Dict[str, Any]:
    """pod_migrate: move pod `request.name` to the receiver at its destination:port."""
    name, destination, credentials, limits = (validate_name(request.name), request.destination, request.credentials,
                                              request.limits)
    store = PodStore(request.state_dir)
    criu = criu_driver.Criu(request.criu_path)
    criu.ensure_compatible(tcp=True)
    post_copy_here, pre_copy_here = P.post_copy_problem(criu), P.pre_copy_problem(criu)
    with store.lock():
        manifest = store.load(name)
        if manifest is None or manifest.state() != RUNNING:
            raise MoveFailed("pod %s is not running on this host (%s): there is nothing to move"
                             % (name, manifest.state() if manifest else "absent"), result="not_moved",
                             runs_on="destination" if manifest and manifest.moved_to else "unknown")
        if manifest.busy():
            raise MoveFailed("pod %s is %s" % (name, manifest.busy()), result="not_moved", runs_on="source")
        manifest.mark_moving("outgoing", destination, secrets.token_hex(8))
        store.save(manifest)
    pod = SourcePod(store, criu, manifest,
                    os.path.normpath(request.image_dir or os.path.join(request.state_dir, "outgoing", name)))
    previous = signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the controller's connection may go; the move finishes
    channel = None
    try:
        def connect() -> socket.socket:
            return credentials.secure(transfer.connect(destination, request.port, limits.connect), False, limits.connect)

        def open_stream(stream_id: str) -> socket.socket:
            sock = connect()
            transfer.write_frame(sock, P.hello(credentials.token, name, P.STREAM_PAGES, stream_id))
            return sock
        channel = transfer.Channel(connect(), limits.reply)
        return SourceConversation(channel, pod, credentials.token, limits, open_stream, destination).run(
            request.strategy, request.storage, post_copy_here, pre_copy_here)
    except MoveFailed:
        raise
    except Exception as exc:  # a broken connection, a full disk, SIGTERM: before the freeze nothing has changed
        if pod.dumped:  # the conversation revives or hands over after the freeze; a net for the unexpected
            pod.revive()
        raise MoveFailed("the move of pod %s to %s failed before the pod stopped: %s; it runs here as before"
                         % (name, destination, _msg(exc)), result="not_moved", runs_on="source")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if channel is not None:
            channel.close()
        pod.cleanup()
        _clear_marker(store, name)


def _clear_marker(store: PodStore, name: str) -> None:
    with store.lock():
        manifest = store.load(name)
        if manifest is not None and manifest.migration and manifest.migration.get("pid") == os.getpid():
            manifest.migration = None
            store.save(manifest)
