# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CRIU's page traffic between the hosts, relayed by AutoPod.

CRIU never listens on, or connects to, the network itself. Each CRIU process that sends or receives
pages (a dump or pre-dump on the source; a page server or lazy-pages on the destination) gets one end
of a local socket pair (`--ps-socket`), and a Relay copies between the other end and a connection
between the hosts that was opened, and authenticated with the move's token, like the control
connection. So only the two AutoPod processes of one move can reach a page server, and AutoPod sees
every byte: it counts them, notices a peer that goes silent (packets dropped, not refused: no error
ever comes), and can cut a stream, which CRIU sees as a closed connection and handles as a failure.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import List, Optional, Tuple

CHUNK = 1 << 20
POLL = 0.5  # how often a waiting relay thread looks at the clock


class Relay:
    """Copies between CRIU's local socket and the peer connection, both ways, until both ends close."""

    def __init__(self, local: socket.socket, remote: socket.socket, stall_timeout: float, name: str) -> None:
        self.local, self.remote, self.name = local, remote, name
        self.stall_timeout = stall_timeout
        self.to_remote = 0  # bytes from CRIU here to the peer
        self.from_remote = 0
        self.last_activity = self.last_sent = self.last_received = time.monotonic()
        self._watching_peer = False
        self.error: Optional[str] = None
        self._lock = threading.Lock()
        self._closed = 0
        self._done = threading.Event()
        for sock in (local, remote):
            sock.settimeout(POLL)
        self._threads: List[threading.Thread] = [
            threading.Thread(target=self._copy, args=(local, remote, True), daemon=True),
            threading.Thread(target=self._copy, args=(remote, local, False), daemon=True)]

    def start(self) -> "Relay":
        for thread in self._threads:
            thread.start()
        return self

    def _copy(self, source: socket.socket, target: socket.socket, outgoing: bool) -> None:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while not self._done.is_set():
            try:
                count = source.recv_into(buffer)
            except socket.timeout:
                if self._watching_peer and time.monotonic() - self.last_received > self.stall_timeout:
                    self.fail("nothing came from the peer for %d seconds" % self.stall_timeout)
                continue
            except OSError as exc:
                self.fail("%s side: %s" % ("local" if outgoing else "peer", exc))
                return
            if not count:
                self._half_closed(target)
                return
            try:
                self._send(target, view[:count])
            except OSError as exc:
                self.fail("%s side: %s" % ("peer" if outgoing else "local", exc))
                return
            with self._lock:
                self.last_activity = time.monotonic()
                if outgoing:
                    self.to_remote += count
                    self.last_sent = self.last_activity
                else:
                    self.from_remote += count
                    self.last_received = self.last_activity

    def _send(self, target: socket.socket, data: memoryview) -> None:
        """sendall with the stall timeout: a peer whose window stays closed is a silent peer."""
        sent, started = 0, time.monotonic()
        while sent < len(data):
            try:
                sent += target.send(data[sent:])
                started = time.monotonic()
            except socket.timeout:
                if time.monotonic() - started > self.stall_timeout:
                    raise OSError("the peer took nothing for %d seconds" % self.stall_timeout)

    def _half_closed(self, target: socket.socket) -> None:
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with self._lock:
            self._closed += 1
            if self._closed == 2:
                self._done.set()

    def fail(self, reason: str) -> None:
        """Cut both ends: CRIU here sees its connection closed, the peer sees a reset."""
        with self._lock:
            if self.error is None and not (self._done.is_set() and self._closed == 2):
                self.error = "%s stream: %s" % (self.name, reason)
        self._done.set()
        for sock in (self.local, self.remote):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

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
        for thread in self._threads:
            thread.join(2 * POLL + 1)
        for sock in (self.local, self.remote):
            sock.close()


def criu_socket_pair() -> Tuple[socket.socket, socket.socket]:
    """(the end CRIU inherits, the end the relay keeps)."""
    criu_end, relay_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    criu_end.set_inheritable(True)
    return criu_end, relay_end
