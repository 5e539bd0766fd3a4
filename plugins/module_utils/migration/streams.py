# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CRIU's page traffic between the hosts, relayed by AutoPod.

CRIU never listens on, or connects to, the network itself. Each CRIU process that sends or receives
pages (a dump or pre-dump on the source; a page server or lazy-pages on the destination) gets one end
of a local socket pair (`--ps-socket`), and a Relay copies between the other end and a connection
between the hosts that is TLS 1.3 with the move's credentials and opened with its token, like the
control connection. So only the two AutoPod processes of one move can reach a page server, and AutoPod sees
every byte: it counts them, notices a peer that goes silent (packets dropped, not refused: no error
ever comes), and can cut a stream, which CRIU sees as a closed connection and handles as a failure.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from typing import Dict, List, Optional, Tuple

CHUNK = 1 << 20
POLL = 0.5  # how often a waiting relay thread looks at the clock


class Relay:
    """Copies between CRIU's local socket and the peer connection, both ways, until both ends close.

    One thread does both directions: the peer connection may be a TLS socket, and an OpenSSL
    connection must not be read and written from two threads at once.
    """

    def __init__(self, local: socket.socket, remote: socket.socket, stall_timeout: float, name: str) -> None:
        self.local, self.remote, self.name = local, remote, name
        self.stall_timeout = stall_timeout
        self.to_remote = 0  # bytes from CRIU here to the peer
        self.from_remote = 0
        self.last_activity = self.last_sent = self.last_received = time.monotonic()
        self._watching_peer = False
        self.error: Optional[str] = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)

    def start(self) -> "Relay":
        self._thread.start()
        return self

    def _pump(self) -> None:
        ends = _Ends(self.local, self.remote)
        try:
            while not self._done.is_set() and not ends.finished():
                readable, writable = ends.ready(POLL)
                for sock in readable:
                    self._count(sock is self.remote, ends.read(sock))
                for sock in writable:
                    ends.write(sock)
                self._check_stalls(ends)
        except OSError as exc:
            self.fail(str(exc))
            return
        self._done.set()

    def _count(self, from_peer: bool, count: int) -> None:
        if not count:
            return
        with self._lock:
            self.last_activity = time.monotonic()
            if from_peer:
                self.from_remote += count
                self.last_received = self.last_activity
            else:
                self.to_remote += count
                self.last_sent = self.last_activity

    def _check_stalls(self, ends: "_Ends") -> None:
        now = time.monotonic()
        if self._watching_peer and ends.reading[self.remote] and now - self.last_received > self.stall_timeout:
            raise OSError("nothing came from the peer for %d seconds" % self.stall_timeout)
        for sock, who in ((self.remote, "the peer"), (self.local, "CRIU here")):
            if ends.blocked_for(sock) > self.stall_timeout:
                raise OSError("%s took nothing for %d seconds" % (who, self.stall_timeout))

    def fail(self, reason: str) -> None:
        """Cut both ends: CRIU here sees its connection closed, the peer sees a reset."""
        with self._lock:
            if self.error is None and not self._done.is_set():
                self.error = "%s stream: %s" % (self.name, reason)
        self._done.set()
        for sock in (self.local, self.remote):
            _shutdown(sock, socket.SHUT_RDWR)

    def watch_peer(self) -> None:
        """From now on, a peer that sends nothing for the stall timeout is a failure (streams where the
        peer must keep talking: the destination's side of any page stream, and a lazy stream once the
        destination's lazy-pages runs). Blocked sends are always a failure."""
        with self._lock:
            self.last_received = time.monotonic()
            self._watching_peer = True

    def sent_ago(self) -> float:
        return time.monotonic() - self.last_sent

    def wait(self, timeout: Optional[float] = None) -> bool:
        """True once both directions ended (cleanly or not)."""
        return self._done.wait(timeout)

    @property
    def finished_cleanly(self) -> bool:
        return self._done.is_set() and self.error is None

    def close(self) -> None:
        self.fail("closed")
        self._thread.join(2 * POLL + 1)
        for sock in (self.local, self.remote):
            sock.close()


class _Ends:
    """The two sockets of a relay, non-blocking, with what waits to be written to each."""

    def __init__(self, local: socket.socket, remote: socket.socket) -> None:
        self.peer = {local: remote, remote: local}
        self.waiting = {local: bytearray(), remote: bytearray()}  # bytes to write to that socket
        self.reading = {local: True, remote: True}  # until that socket's end of stream
        self.shut = {local: False, remote: False}  # our writing half closed
        self._progress: Dict[socket.socket, float] = {local: 0.0, remote: 0.0}  # last write, or first byte waiting
        self._buffer = bytearray(CHUNK)
        for sock in (local, remote):
            sock.setblocking(False)

    def finished(self) -> bool:
        return all(self.shut.values())

    def ready(self, timeout: float) -> Tuple[List[socket.socket], List[socket.socket]]:
        readers = [s for s, on in self.reading.items() if on and len(self.waiting[self.peer[s]]) < CHUNK]
        writers = [s for s, data in self.waiting.items() if data]
        decrypted = [s for s in readers if isinstance(s, ssl.SSLSocket) and s.pending()]
        if decrypted:  # TLS already holds plaintext that select cannot see
            return decrypted, []
        readable, writable = select.select(readers, writers, [], timeout)[:2]
        return readable, writable

    def read(self, sock: socket.socket) -> int:
        """Read what is there (a TLS socket gives one record per call), up to a chunk; 0 at the end."""
        total, view = 0, memoryview(self._buffer)
        while total < CHUNK:
            try:
                count = sock.recv_into(view[total:])
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except ssl.SSLZeroReturnError:  # the peer's close_notify, after ours (ssl returns 0 only before)
                count = 0
            if not count:
                self.reading[sock] = False
                break
            total += count
        target = self.peer[sock]
        if total and not self.waiting[target]:
            self._progress[target] = time.monotonic()
        self.waiting[target] += view[:total]
        view.release()
        self._close_finished(self.peer[sock])
        return total

    def write(self, sock: socket.socket) -> None:
        data = self.waiting[sock]
        try:
            sent = sock.send(data[:CHUNK])
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            sent = 0
        del data[:sent]
        if sent:
            self._progress[sock] = time.monotonic()
        self._close_finished(sock)

    def blocked_for(self, sock: socket.socket) -> float:
        """How long bytes have waited for `sock` to take any."""
        return time.monotonic() - self._progress[sock] if self.waiting[sock] else 0.0

    def _close_finished(self, sock: socket.socket) -> None:
        """Pass an end of stream on once everything before it is written: TLS's close_notify, or a plain
        half-close. After our close_notify the peer must send nothing more: SSLSocket.unwrap calls
        SSL_shutdown twice, the second reads, and OpenSSL makes application data it finds there fatal
        (APPLICATION_DATA_AFTER_CLOSE_NOTIFY). CRIU's page streams never do: each side's last message is
        answered before it closes (docs/design.md, "CRIU's page streams end")."""
        if self.reading[self.peer[sock]] or self.waiting[sock] or self.shut[sock]:
            return
        if isinstance(sock, ssl.SSLSocket):
            try:
                sock.unwrap()
                # It returned: its second read found the peer's close_notify, so the peer's direction
                # has ended too (and nothing more can be read through TLS to say so).
                self.shut[sock] = True
                self.reading[sock] = False
                self._close_finished(self.peer[sock])
                return
            except ssl.SSLWantReadError:
                pass  # close_notify is out; the peer's own comes later, as the end of what it sends
            except ssl.SSLWantWriteError:
                return  # close_notify did not fit yet: again when the socket takes more
        else:
            _shutdown(sock, socket.SHUT_WR)
        self.shut[sock] = True


def _shutdown(sock: socket.socket, how: int) -> None:
    """Shut the connection itself (SSLSocket.shutdown would drop TLS and read ciphertext as data after it).
    A TLS peer then reads an end without close_notify: a cut stream, an error on its side."""
    try:
        socket.socket.shutdown(sock, how)
    except OSError:
        pass


def criu_socket_pair() -> Tuple[socket.socket, socket.socket]:
    """(the end CRIU inherits, the end the relay keeps)."""
    criu_end, relay_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    criu_end.set_inheritable(True)
    return criu_end, relay_end
