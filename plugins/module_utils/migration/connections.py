# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The receiver's door: it accepts connections until the move's own connections have arrived.

Anybody on the network may connect to the receiver's port. Each connection gets `handshake` seconds,
in a thread of its own, to complete the TLS handshake with the move's credentials
(credentials.py) and present HELLO with the move's token; one that does not (a port scan, an idle
connection, a wrong certificate or token) is closed and logged, and the door stays open. The first control
connection with the token starts the move; page streams with the token wait until the conversation
asks for them by their id.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from typing import Callable, Dict, List, Optional

from ansible_collections.autopod.autopod.plugins.module_utils import transfer
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.migration import protocol as P
from ansible_collections.autopod.autopod.plugins.module_utils.migration.credentials import Credentials


class Acceptor:
    """Accepts and sorts the connections of one move (see the module docstring)."""

    def __init__(self, listener: socket.socket, credentials: Credentials, pod: str, handshake: float,
                 log: Callable[[str], None]) -> None:
        self.listener, self.credentials, self.pod, self.handshake = listener, credentials, pod, handshake
        self.log = log
        self.control: "queue.Queue[transfer.Channel]" = queue.Queue()
        self.refused: List[str] = []
        self._streams: Dict[str, socket.socket] = {}
        self._arrived = threading.Condition()
        self._control_taken = False
        self._closed = False

    def start(self) -> "Acceptor":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, peer = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._greet, args=(sock, "%s:%d" % peer[:2]), daemon=True).start()

    def _greet(self, sock: socket.socket, peer: str) -> None:
        try:
            transfer.keep_alive(sock)
            sock = self.credentials.secure(sock, server_side=True, timeout=self.handshake)
            sock.settimeout(self.handshake)
            hello = transfer.read_frame(sock)
            if hello.get("type") != P.HELLO or not transfer.tokens_match(self.credentials.token, hello.get("token")) \
                    or hello.get("pod") != self.pod:
                raise AutopodError("it did not present this move's token")
            self._route(sock, hello, peer)
        except (AutopodError, OSError) as exc:
            self.refused.append(peer)
            self.log("refused a connection from %s: %s" % (peer, getattr(exc, "msg", exc)))
            sock.close()

    def _route(self, sock: socket.socket, hello: Dict[str, str], peer: str) -> None:
        with self._arrived:
            if hello.get("stream") == P.STREAM_CONTROL:
                if self._control_taken:
                    raise AutopodError("a move is already under way on this receiver")
                self._control_taken = True
                self.log("source %s connected" % peer)
                self.control.put(transfer.Channel(sock))
                return
            self._streams[str(hello.get("id"))] = sock
            self._arrived.notify_all()

    def wait_control(self, timeout: float) -> Optional[transfer.Channel]:
        try:
            return self.control.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait_stream(self, stream_id: str, timeout: float) -> socket.socket:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while stream_id not in self._streams:
                if not self._arrived.wait(max(deadline - time.monotonic(), 0)) and time.monotonic() > deadline:
                    raise AutopodError("the source did not open page stream %s within %d seconds" % (stream_id, timeout))
            return self._streams.pop(stream_id)

    def close(self) -> None:
        self._closed = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self._arrived:
            for sock in self._streams.values():
                sock.close()
            self._streams.clear()
