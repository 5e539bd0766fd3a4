"""The migration conversation, both sides against each other over a socket pair, with fake pods.

The real SourceConversation and ReceiverConversation talk through real Channels and real page-stream
relays; only what they do to pods (CRIU, namespaces) is replaced by recorders. Each test checks what
each side decided, including when the other side fails or goes silent at a given step.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from typing import Any, Dict, List, Optional

import pytest

from ansible_collections.autopod.autopod.plugins.module_utils import rootfs_delta, transfer
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.migration import protocol as P
from ansible_collections.autopod.autopod.plugins.lookup.move_credentials import make_credentials
from ansible_collections.autopod.autopod.plugins.module_utils.migration import receiver, source
from ansible_collections.autopod.autopod.plugins.module_utils.migration.credentials import Credentials
from ansible_collections.autopod.autopod.plugins.module_utils.migration.source_pod import DumpFailed
from ansible_collections.autopod.autopod.plugins.module_utils.migration.streams import Relay
from ansible_collections.autopod.autopod.plugins.module_utils.pod import PodSpec

PAGES = b"p" * (3 << 20)  # what the fake CRIU streams


class Spec:
    def __init__(self, rootfs: str) -> None:
        self.name, self.rootfs = "web", rootfs


class FakeSourcePod:
    """Records what the source did to its pod; `fail_freeze` makes the dump fail."""

    def __init__(self, tmp: str, fail_freeze: bool = False) -> None:
        self.spec = Spec(os.path.join(tmp, "src-rootfs"))
        os.makedirs(os.path.join(self.spec.rootfs, "etc"))
        with open(os.path.join(self.spec.rootfs, "etc", "hostname"), "w") as handle:
            handle.write("web\n")
        self.image_dir = os.path.join(tmp, "out")
        self.fail_freeze = fail_freeze
        self.calls: List[str] = []

    def memory(self) -> int:
        return 1 << 20

    def cpuinfo(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "cpuinfo.img"), "wb") as handle:
            handle.write(b"cpu")

    def scan_rootfs(self) -> Dict[str, rootfs_delta.Fingerprint]:
        return rootfs_delta.scan_tree(self.spec.rootfs)

    def prepare_images(self) -> None:
        os.makedirs(self.image_dir, exist_ok=True)

    def pre_dump(self, number: int, page_socket: socket.socket) -> int:
        """A pre-copy round of a pod that rewrote all its memory since the last one."""
        self.calls.append("pre_dump")
        with socket.socket(fileno=os.dup(page_socket.fileno())) as sender:
            sender.sendall(PAGES)
        return len(PAGES) // 4096

    def freeze(self, strategy: str, page_socket: socket.socket, rounds: int, deadline: float) -> None:
        self.calls.append("freeze")
        if self.fail_freeze:
            raise DumpFailed("criu dump failed (exit 1): nope")
        with open(os.path.join(self.image_dir, "inventory.img"), "wb") as handle:
            handle.write(b"images")
        sender = socket.socket(fileno=os.dup(page_socket.fileno()))
        if strategy == P.POST_COPY:  # the dump stays up, serving pages on request
            threading.Thread(target=_serve_lazily, args=(sender,), daemon=True).start()
        else:
            try:
                sender.sendall(PAGES)
            except OSError as exc:  # as CRIU's dump fails when its page stream breaks
                raise DumpFailed("criu dump failed: %s" % exc)
            finally:
                sender.close()

    def dump_stats(self) -> Dict[str, int]:
        return {"frozen_time_us": 1000, "pages_written": len(PAGES) // 4096}

    def lazy_bytes(self) -> int:
        return len(PAGES)

    def image_files(self) -> List[str]:
        return sorted(os.listdir(self.image_dir))

    def revive(self) -> Dict[str, object]:
        self.calls.append("revive")
        return {"processes": 1}

    def end(self, destination: str) -> None:
        self.calls.append("end")


def _serve_lazily(sock: socket.socket) -> None:
    """A stand-in for a lazy dump: the first request gets every page; then wait until the peer closes."""
    with sock:
        if sock.recv(64):
            sock.sendall(PAGES)
        while sock.recv(64):
            pass


class FakeCriu:
    def cpuinfo(self, action: str, directory: str) -> None:
        assert os.path.exists(os.path.join(directory, "cpuinfo.img"))


class FakeArrivingPod:
    """Records what the destination did; `fail` names a step that fails."""

    def __init__(self, tmp: str, fail: str = "") -> None:
        self.spec = Spec(os.path.join(tmp, "dst-rootfs"))
        self.image_dir = os.path.join(tmp, "in")
        os.makedirs(self.image_dir)
        self.criu, self.fail, self.calls = FakeCriu(), fail, []
        self.received = 0
        self.relay: Optional[Relay] = None

    def _step(self, name: str) -> None:
        self.calls.append(name)
        if self.fail == name:
            raise AutopodError("%s failed here" % name)

    def open_rootfs(self, needed: int, deletions: List[str]) -> str:
        self._step("rootfs")
        os.makedirs(self.spec.rootfs, exist_ok=True)
        rootfs_delta.apply_deletions(self.spec.rootfs, deletions)
        return self.spec.rootfs

    def start_page_server(self, number: int, stream: socket.socket, stall: float) -> None:
        self._step("page_server")
        self.reader = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self.reader.start()

    def _drain(self, stream: socket.socket) -> None:
        while True:
            data = stream.recv(1 << 20)
            if not data:
                break
            self.received += len(data)
        _close(stream)

    def end_page_server(self, timeout: float) -> None:
        self.reader.join(timeout)
        self._step("pages_written")

    def start_lazy_pages(self, stream: socket.socket, stall: float) -> None:
        self._step("lazy_pages")
        self.lazy_stream = stream

    def restore_held(self, timeout: float) -> Dict[str, Any]:
        self._step("restore")
        return {}

    def go(self, timeout: float) -> Dict[str, Any]:
        self._step("go")
        return {"init_pid": 42}

    def wait_lazy(self, poll: float) -> Optional[str]:
        self.calls.append("wait_lazy")
        if self.fail == "lazy":
            return "criu lazy-pages failed (exit 1)"
        self.lazy_stream.sendall(b"give")
        while self.received < len(PAGES):
            self.received += len(self.lazy_stream.recv(1 << 20))
        _close(self.lazy_stream)
        return None

    def give_back(self) -> None:
        self.calls.append("give_back")

    def settle(self) -> None:
        self.calls.append("settle")


def connected_pair(credentials: Optional[Credentials]):
    """(the source's end, the destination's end) of a connection, secured as a move's would be."""
    mine, theirs = socket.socketpair()
    if credentials is None:
        return mine, theirs
    secured: Dict[str, socket.socket] = {}
    handshake = threading.Thread(target=lambda: secured.update(theirs=credentials.secure(theirs, True, 5)))
    handshake.start()
    mine = credentials.secure(mine, False, 5)
    handshake.join()
    return mine, secured["theirs"]


def _close(stream: socket.socket) -> None:
    """Close a page stream as the destination's relay does: TLS's close_notify first, if it is TLS."""
    if isinstance(stream, ssl.SSLSocket):
        try:
            stream.unwrap()
        except OSError:
            pass
    stream.close()


class Streams:
    """The receiver's door, reduced to page streams handed over in memory."""

    def __init__(self, credentials: Optional[Credentials]) -> None:
        self.credentials = credentials
        self.pending: Dict[str, socket.socket] = {}
        self.arrived = threading.Condition()

    def open(self, stream_id: str) -> socket.socket:
        mine, theirs = connected_pair(self.credentials)
        with self.arrived:
            self.pending[stream_id] = theirs
            self.arrived.notify_all()
        return mine

    def wait_stream(self, stream_id: str, timeout: float) -> socket.socket:
        with self.arrived:
            assert self.arrived.wait_for(lambda: stream_id in self.pending, timeout)
            return self.pending.pop(stream_id)


def converse(tmp_path, strategy: str = P.STOP_AND_COPY, source_fail: bool = False, destination_fail: str = "",
             limits: Optional[P.Limits] = None, silence_after: Optional[str] = None,
             credentials: Optional[Credentials] = None):
    """Run both sides; returns (source result or MoveFailed, receiver outcome or exception, the two fake pods)."""
    limits = limits or P.Limits(reply=5, stall=2, max_freeze=5, fence_margin=0.5)
    left, right = connected_pair(credentials)
    source_pod = FakeSourcePod(str(tmp_path), fail_freeze=source_fail)
    arriving = FakeArrivingPod(str(tmp_path), fail=destination_fail)
    streams = Streams(credentials)
    outcome: Dict[str, Any] = {}

    def receive() -> None:
        channel = transfer.Channel(right, limits.reply)
        channel.expect(P.HELLO)
        conversation = receiver.ReceiverConversation(channel, arriving, streams, limits, None, lambda _m: None)
        if silence_after:  # the destination stops answering once it has seen this message
            original = conversation._next

            def next_then_silence(timeout):
                message = original(timeout)
                if message["type"] == silence_after:
                    time.sleep(limits.max_freeze + limits.reply + 2)
                return message
            conversation._next = next_then_silence
        try:
            outcome["receiver"] = conversation.run()
        except Exception as exc:  # what the daemon would log and undo
            outcome["receiver"] = exc
            arriving.give_back()
        finally:
            channel.close()

    worker = threading.Thread(target=receive, daemon=True)
    worker.start()
    channel = transfer.Channel(left, limits.reply)
    conversation = source.SourceConversation(channel, source_pod, "t0ken", limits, streams.open, "10.0.0.2")
    started = time.monotonic()
    try:
        result = conversation.run(strategy, "copy", None, None)
    except source.MoveFailed as exc:
        result = exc
    finally:
        channel.close()
    source_pod.seconds = time.monotonic() - started
    worker.join(limits.max_freeze + limits.reply + 5)
    return result, outcome.get("receiver"), source_pod, arriving


def test_stop_and_copy_moves_the_pod_and_ends_the_source_copy_only_after_it_runs(tmp_path):
    result, received, source_pod, arriving = converse(tmp_path)
    assert result["result"] == "moved" and result["runs_on"] == "destination", result
    assert source_pod.calls == ["freeze", "end"]
    # the rootfs travels twice: copied while the pod runs, then its delta while it is frozen
    assert arriving.calls == ["rootfs", "page_server", "rootfs", "pages_written", "restore", "go", "settle"]
    assert arriving.received == len(PAGES) and result["bytes"]["pages"] == len(PAGES)
    assert received == "moved"
    assert os.path.exists(os.path.join(arriving.spec.rootfs, "etc", "hostname")), "the rootfs travelled"
    phases = result["frozen_phases_ms"]
    assert set(phases) == {"dump", "rootfs_delta", "pages", "images", "restore", "network", "resume"}
    assert abs(sum(phases.values()) - result["frozen_ms"]) <= 1.0, (phases, result["frozen_ms"])


def test_post_copy_hands_over_when_every_page_arrived(tmp_path):
    result, received, source_pod, arriving = converse(tmp_path, P.POST_COPY)
    assert result["result"] == "moved" and result["strategy"] == P.POST_COPY, result
    assert source_pod.calls == ["freeze", "end"]
    assert arriving.calls == ["rootfs", "rootfs", "lazy_pages", "restore", "go", "wait_lazy", "settle"]


def test_pre_copy_counts_the_pages_of_every_round_and_of_the_freeze(tmp_path):
    result, received, source_pod, arriving = converse(tmp_path, P.PRE_COPY)
    assert result["result"] == "moved" and result["strategy"] == P.PRE_COPY and received == "moved", result
    rounds = source_pod.calls.count("pre_dump")
    assert rounds >= 2 and source_pod.calls == ["pre_dump"] * rounds + ["freeze", "end"], source_pod.calls
    assert arriving.received == (rounds + 1) * len(PAGES), arriving.received
    assert result["bytes"]["pages"] == arriving.received, result["bytes"]


@pytest.mark.parametrize("strategy", [P.STOP_AND_COPY, P.POST_COPY])
def test_a_move_over_tls_carries_the_rootfs_and_every_page(tmp_path, strategy):
    result, received, _source_pod, arriving = converse(tmp_path, strategy,
                                                       credentials=Credentials(**make_credentials()))
    assert not isinstance(result, Exception), (str(result), received)
    assert result["result"] == "moved" and received == "moved", (result, received)
    assert arriving.received == len(PAGES) and result["bytes"]["pages"] == len(PAGES)
    assert os.path.exists(os.path.join(arriving.spec.rootfs, "etc", "hostname")), "the rootfs travelled"


@pytest.mark.parametrize("step", ["page_server", "pages_written", "restore"])
def test_a_destination_that_fails_before_go_leaves_the_pod_revived_on_the_source(tmp_path, step):
    result, received, source_pod, arriving = converse(tmp_path, destination_fail=step)
    assert isinstance(result, source.MoveFailed)
    assert result.details["result"] == "not_moved" and result.details["runs_on"] == "source"
    # a page server that never starts breaks the dump itself (CRIU resumes the pod); later steps fail after it
    assert source_pod.calls == (["freeze"] if step == "page_server" else ["freeze", "revive"])
    if step != "page_server":
        assert "%s failed here" % step in result.msg
    assert "go" not in arriving.calls and arriving.calls[-1] == "give_back"


def test_a_destination_whose_pages_stop_coming_kills_its_copy_and_the_source_rolls_back(tmp_path):
    result, received, source_pod, arriving = converse(tmp_path, P.POST_COPY, destination_fail="lazy")
    assert isinstance(result, source.MoveFailed)
    assert result.details["result"] == "rolled_back" and result.details["runs_on"] == "source"
    assert result.details["lost_ms"] >= 0 and "rolled back" in result.msg
    assert source_pod.calls == ["freeze", "revive"]
    assert arriving.calls[-1] == "give_back"


def test_a_failed_dump_tells_the_destination_to_give_everything_back(tmp_path):
    result, received, source_pod, arriving = converse(tmp_path, source_fail=True)
    assert isinstance(result, source.MoveFailed) and result.details["result"] == "not_moved"
    assert "failed before it left" in result.msg
    assert isinstance(received, receiver.Aborted) and arriving.calls[-1] == "give_back"
    assert "restore" not in arriving.calls


def test_a_destination_that_goes_silent_while_the_pod_is_frozen_costs_at_most_max_freeze(tmp_path):
    limits = P.Limits(reply=2, stall=1, max_freeze=2, fence_margin=0.5)
    result, received, source_pod, arriving = converse(tmp_path, limits=limits, silence_after=P.IMAGES)
    assert isinstance(result, source.MoveFailed) and result.details["runs_on"] == "source"
    assert source_pod.calls == ["freeze", "revive"]
    assert source_pod.seconds < limits.max_freeze + 1, "the freeze is bounded by max_freeze"
    assert "go" not in arriving.calls


def test_a_destination_that_goes_silent_after_go_is_not_revived_over(tmp_path):
    """GO was sent: the destination may run the pod, so the source must not run it too."""
    result, received, source_pod, arriving = converse(tmp_path, silence_after=P.GO,
                                                      limits=P.Limits(reply=1, stall=1, max_freeze=2))
    assert isinstance(result, source.MoveFailed) and result.details["result"] == "unconfirmed"
    assert result.details["runs_on"] == "destination"
    assert source_pod.calls == ["freeze", "end"], "the source's copy is gone, never revived"


def test_the_definition_a_receiver_gets_is_validated_like_pod_create_s():
    good = {"name": "web", "rootfs": "/srv/pods/web", "command": ["/bin/sh"]}
    assert PodSpec.from_definition(good).name == "web"
    for bad, message in ((dict(good, rootfs="/"), "not the host's /"),
                         (dict(good, mounts=[{"source": "/srv", "target": "/proc"}]), "reserved"),
                         (dict(good, extra=1), "keys a pod does not have: extra"),
                         (dict(good, network={"address": "10.0.0.5/24", "bridge": "br0", "vlan": 3}),
                          "unknown keys: vlan"),
                         ("not a dict", "must be a dictionary")):
        with pytest.raises(AutopodError, match=message):
            PodSpec.from_definition(bad)
