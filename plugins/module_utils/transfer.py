# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The channel a pod travels through: one TCP connection from the source host to the destination.

Why not SSH or the controller: a freeze must not wait for an Ansible task, and hosts of a fleet do
not usually trust each other over SSH; so the destination's receiver listens on a port for the
migration it was told to expect, and only a source holding that migration's credentials (TLS 1.3
with the move's certificate, then its one-time token: migration/credentials.py) is served. Nothing
is staged on the controller and nothing is held in memory whole: files travel as tar streams written
straight to the socket and unpacked as they arrive.

Messages are JSON objects, each preceded by its length (4 bytes, big endian). A file transfer is
a message followed by a tar stream (tar_stream.py); a rootfs in copy mode travels as a delta
(rootfs_delta.py).
"""

from __future__ import annotations

import hmac
import json
import socket
import struct
from typing import Any, Dict, Iterable, Optional

from ansible_collections.autopod.autopod.plugins.module_utils import tar_stream
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError


class RemoteError(AutopodError):
    """The other host reported a failure (as opposed to the connection breaking)."""


class ChannelTimeout(AutopodError):
    """The other host said nothing for too long (a silent peer: packets dropped, not refused)."""


DEFAULT_TIMEOUT = 60.0


_HEADER = struct.Struct("!I")
MAX_MESSAGE = 64 * 1024 * 1024


class _Input:
    """Buffered reads from a socket that survive a timeout: what arrived stays in the buffer, so a caller
    may poll for the next message with short timeouts (a socket file object breaks after one)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.start = 0

    def buffered(self) -> int:
        return len(self.buffer) - self.start

    def read(self, size: int) -> bytes:
        """Exactly `size` bytes, or fewer if the connection ends first."""
        while self.buffered() < size:
            if self.start:
                del self.buffer[:self.start]
                self.start = 0
            chunk = self.sock.recv(max(size - len(self.buffer), 1 << 18))
            if not chunk:
                break
            self.buffer += chunk
        data = bytes(self.buffer[self.start:self.start + size])
        self.start += len(data)
        return data


class Channel:
    """Framed JSON messages and tar streams over a connected socket; counts the bytes it moves."""

    def __init__(self, sock: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sock = sock
        self.timeout = timeout
        sock.settimeout(timeout)
        self.input = _Input(sock)
        self.sent = 0
        self.received = 0

    def wait_for(self, seconds: float) -> "_Patience":
        """`with channel.wait_for(s):` reads and writes in the block may each take up to `s` seconds."""
        return _Patience(self, seconds)

    def write_bytes(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise ChannelTimeout("migration channel: the other host took nothing for %d seconds"
                                 % self.sock.gettimeout())
        except OSError as exc:
            raise AutopodError("migration channel: %s" % exc)

    def send(self, message: Dict[str, Any]) -> None:
        data = json.dumps(message).encode()
        self.write_bytes(_HEADER.pack(len(data)) + data)
        self.sent += _HEADER.size + len(data)

    def receive(self) -> Dict[str, Any]:
        header = self.read_exact(_HEADER.size)
        (length,) = _HEADER.unpack(header)
        if length > MAX_MESSAGE:
            raise AutopodError("migration channel: a %d-byte message is not one AutoPod sends" % length)
        body = self.read_exact(length)
        try:
            message = json.loads(body)
        except ValueError:
            raise AutopodError("migration channel: garbled message (%d bytes: %r...)" % (length, body[:40]))
        if not isinstance(message, dict):
            raise AutopodError("migration channel: garbled message (%d bytes: %r...)" % (length, body[:40]))
        if message.get("type") == "error":
            raise RemoteError(message.get("msg", "the other host reported an error"))
        return message

    def expect(self, kind: str) -> Dict[str, Any]:
        message = self.receive()
        if message.get("type") != kind:
            raise AutopodError("migration channel: expected %s, got %s" % (kind, message.get("type")))
        return message

    def read_exact(self, size: int) -> bytes:
        try:
            data = self.input.read(size)
        except socket.timeout:
            raise ChannelTimeout("migration channel: the other host said nothing for %d seconds" % self.sock.gettimeout())
        except OSError as exc:
            raise AutopodError("migration channel: %s" % exc)
        if len(data) != size:
            raise AutopodError("migration channel: the other host closed the connection")
        self.received += size
        return data

    def send_tree(self, base: str, names: Iterable[str]) -> int:
        """Stream the named entries of `base` (relative paths, parents before children) as a tar."""
        count = tar_stream.send_tree(self, base, names)
        self.sent += count
        return count

    def receive_tree(self, base: str) -> int:
        """Unpack a tar stream into `base`, refusing anything that would land outside it."""
        return tar_stream.receive_tree(self, base)

    def close(self) -> None:
        self.sock.close()


class _Patience:
    def __init__(self, channel: Channel, seconds: float) -> None:
        self.channel, self.seconds = channel, seconds

    def __enter__(self) -> Channel:
        self.channel.sock.settimeout(self.seconds)
        return self.channel

    def __exit__(self, *_exc: object) -> None:
        try:
            self.channel.sock.settimeout(self.channel.timeout)
        except OSError:
            pass


def read_frame(sock: socket.socket) -> Dict[str, Any]:
    """One framed message read straight from the socket, without buffering what follows it (the opening
    HELLO of a connection whose next bytes belong to someone else, such as CRIU's page stream)."""
    def exact(size: int) -> bytes:
        data = b""
        while len(data) < size:
            try:
                chunk = sock.recv(size - len(data))
            except socket.timeout:
                raise ChannelTimeout("migration channel: nothing was said within %d seconds" % sock.gettimeout())
            except OSError as exc:
                raise AutopodError("migration channel: %s" % exc)
            if not chunk:
                raise AutopodError("migration channel: the other side closed the connection")
            data += chunk
        return data
    (length,) = _HEADER.unpack(exact(_HEADER.size))
    if length > 65536:
        raise AutopodError("migration channel: a %d-byte greeting is not one AutoPod sends" % length)
    try:
        message = json.loads(exact(length))
    except ValueError:
        raise AutopodError("migration channel: a garbled greeting")
    if not isinstance(message, dict):
        raise AutopodError("migration channel: a garbled greeting")
    return message


def write_frame(sock: socket.socket, message: Dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    sock.sendall(_HEADER.pack(len(data)) + data)


def tokens_match(expected: str, given: Optional[str]) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


def keep_alive(sock: socket.socket) -> None:
    """TCP keepalive probes: a peer that vanished without a word is noticed in about 11 seconds even while
    nothing is being sent, and no-delay for the small control messages."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def connect(address: str, port: int, timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except OSError as exc:
        raise AutopodError("cannot reach the destination's receiver at %s:%d (%s)" % (address, port, exc))
    keep_alive(sock)
    return sock
