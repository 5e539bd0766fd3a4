# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The channel a pod travels through: one TCP connection from the source host to the destination.

Why not SSH or the controller: a freeze must not wait for an Ansible task, and hosts of a fleet do
not usually trust each other over SSH; so the destination's receiver listens on a port for the
migration it was told to expect, and only a source presenting that migration's one-time token is
served. Nothing is staged on the controller and nothing is held in memory whole: files travel as
tar streams written straight to the socket and unpacked as they arrive.

Messages are JSON objects, each preceded by its length (4 bytes, big endian). A file transfer is
a message followed by a tar stream cut into length-prefixed chunks and ended by an empty one
(a tar reader stops at the first end-of-archive block and may leave padding unread, so the
stream's end must be marked outside the tar); the rootfs of a pod in copy mode travels as a delta against
the destination's copy, judged by type, size, mode and modification time, so a second pass while
the pod is frozen sends only what changed since the first.
"""

from __future__ import annotations

import hmac
import json
import os
import socket
import stat
import struct
import tarfile
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError

Fingerprint = Tuple[int, int, int]  # (mode, size, mtime_ns)


class RemoteError(AutopodError):
    """The other host reported a failure (as opposed to the connection breaking)."""


class ChannelTimeout(AutopodError):
    """The other host said nothing for too long (a silent peer: packets dropped, not refused)."""


DEFAULT_TIMEOUT = 60.0


_HEADER = struct.Struct("!I")
MTIME_NS = "AUTOPOD.mtime_ns"
# Members are checked by _check_member; Python 3.12+ would otherwise warn about, and 3.14 change,
# its default extraction filter.
_TRUSTED = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
MAX_MESSAGE = 64 * 1024 * 1024


class Channel:
    """Framed JSON messages and tar streams over a connected socket; counts the bytes it moves."""

    def __init__(self, sock: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sock = sock
        self.timeout = timeout
        sock.settimeout(timeout)
        self.reader = sock.makefile("rb", buffering=1 << 20)
        self.writer = sock.makefile("wb", buffering=1 << 20)
        self.sent = 0
        self.received = 0

    def wait_for(self, seconds: float) -> "_Patience":
        """`with channel.wait_for(s):` reads and writes in the block may each take up to `s` seconds."""
        return _Patience(self, seconds)

    def send(self, message: Dict[str, Any]) -> None:
        data = json.dumps(message).encode()
        try:
            self.writer.write(_HEADER.pack(len(data)) + data)
            self.writer.flush()
        except socket.timeout:
            raise ChannelTimeout("migration channel: the other host took nothing for %d seconds"
                                 % self.sock.gettimeout())
        except OSError as exc:
            raise AutopodError("migration channel: %s" % exc)
        self.sent += _HEADER.size + len(data)

    def receive(self) -> Dict[str, Any]:
        header = self._read_exact(_HEADER.size)
        (length,) = _HEADER.unpack(header)
        if length > MAX_MESSAGE:
            raise AutopodError("migration channel: a %d-byte message is not one AutoPod sends" % length)
        body = self._read_exact(length)
        try:
            message = json.loads(body)
        except ValueError:
            raise AutopodError("migration channel: garbled message (%d bytes: %r...)" % (length, body[:40]))
        if message.get("type") == "error":
            raise RemoteError(message.get("msg", "the other host reported an error"))
        return message

    def expect(self, kind: str) -> Dict[str, Any]:
        message = self.receive()
        if message.get("type") != kind:
            raise AutopodError("migration channel: expected %s, got %s" % (kind, message.get("type")))
        return message

    def _read_exact(self, size: int) -> bytes:
        try:
            data = self.reader.read(size)
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
        try:
            return self._send_tree(base, names)
        except socket.timeout:
            raise ChannelTimeout("migration channel: the other host stopped taking a transfer")
        except (BrokenPipeError, ConnectionError) as exc:
            raise AutopodError("migration channel: %s" % exc)

    def _send_tree(self, base: str, names: Iterable[str]) -> int:
        chunks = _ChunkWriter(self.writer)
        with tarfile.open(fileobj=chunks, mode="w|", format=tarfile.PAX_FORMAT) as archive:
            for name in names:
                path = os.path.join(base, name)
                info = archive.gettarinfo(path, arcname=name)
                info.pax_headers[MTIME_NS] = str(os.lstat(path).st_mtime_ns)
                if info.isfile():
                    with open(path, "rb") as content:
                        archive.addfile(info, content)
                else:
                    archive.addfile(info)
        chunks.close()
        self.writer.flush()
        self.sent += chunks.count
        return chunks.count

    def receive_tree(self, base: str) -> int:
        """Unpack a tar stream into `base`, refusing anything that would land outside it."""
        chunks = _ChunkReader(self.reader)
        with tarfile.open(fileobj=chunks, mode="r|") as archive:
            for member in archive:
                _check_member(base, member)
                _make_room(os.path.join(base, member.name), member)
                archive.extract(member, base, set_attrs=True, numeric_owner=True, **_TRUSTED)
                if not member.isdir() and not member.issym():
                    _exact_mtime(os.path.join(base, member.name), member)
        chunks.drain()
        self.received += chunks.count
        return chunks.count

    def close(self) -> None:
        for stream in (self.writer, self.reader):
            try:
                stream.close()
            except OSError:
                pass
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


class _ChunkWriter:
    """A file-like writer that frames what it is given as length-prefixed chunks."""

    SIZE = 1 << 20

    def __init__(self, raw) -> None:
        self.raw, self.count, self.buffer = raw, 0, bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        while len(self.buffer) >= self.SIZE:
            self._emit(bytes(self.buffer[:self.SIZE]))
            del self.buffer[:self.SIZE]
        return len(data)

    def _emit(self, chunk: bytes) -> None:
        self.raw.write(_HEADER.pack(len(chunk)) + chunk)
        self.count += _HEADER.size + len(chunk)

    def close(self) -> None:
        if self.buffer:
            self._emit(bytes(self.buffer))
            self.buffer = bytearray()
        self._emit(b"")  # the end of this tree


class _ChunkReader:
    """The reading side of _ChunkWriter: a file-like reader over the chunks, up to the empty one."""

    def __init__(self, raw) -> None:
        self.raw, self.count, self.buffer, self.ended = raw, 0, b"", False

    def _next(self) -> None:
        try:
            self._read_chunk()
        except socket.timeout:
            raise ChannelTimeout("migration channel: the other host stopped sending in a transfer")
        except OSError as exc:
            raise AutopodError("migration channel: %s" % exc)

    def _read_chunk(self) -> None:
        header = self.raw.read(_HEADER.size)
        if len(header) != _HEADER.size:
            raise AutopodError("migration channel: the other host closed the connection in a transfer")
        (length,) = _HEADER.unpack(header)
        chunk = self.raw.read(length) if length else b""
        if len(chunk) != length:
            raise AutopodError("migration channel: the other host closed the connection in a transfer")
        self.count += _HEADER.size + length
        self.ended = not length
        self.buffer += chunk

    def read(self, size: int = -1) -> bytes:
        while not self.ended and (size < 0 or len(self.buffer) < size):
            self._next()
        if size < 0:
            size = len(self.buffer)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def drain(self) -> None:
        """Skip what the tar reader left (padding after its end-of-archive block)."""
        while not self.ended:
            self._next()
        self.buffer = b""


def _make_room(path: str, member: tarfile.TarInfo) -> None:
    """Remove what a changed entry replaces: tarfile overwrites regular files, but a hard link or a
    device node it recreates would fail with "File exists" (a file changed since the first pass)."""
    if not member.isdir() and os.path.lexists(path) and not os.path.isdir(path):
        os.unlink(path)


def _exact_mtime(path: str, member: tarfile.TarInfo) -> None:
    """tarfile keeps times as floats, which lose nanoseconds; the next delta compares them exactly,
    so the sender puts them in a PAX header of their own."""
    if MTIME_NS in member.pax_headers:
        nanoseconds = int(member.pax_headers[MTIME_NS])
        os.utime(path, ns=(nanoseconds, nanoseconds))


def _check_member(base: str, member: tarfile.TarInfo) -> None:
    target = os.path.realpath(os.path.join(base, member.name))
    if not (target == os.path.realpath(base) or target.startswith(os.path.realpath(base) + os.sep)):
        raise AutopodError("migration channel: refused %r, which points outside %s" % (member.name, base))
    if member.islnk() and os.path.isabs(member.linkname):
        raise AutopodError("migration channel: refused hard link %r to an absolute path" % member.name)


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


def scan_tree(base: str) -> Dict[str, Fingerprint]:
    """Every entry under `base` (not crossing into other filesystems) with what tells a change.

    Run while the pod is frozen (the second pass of a copy-storage move), so it is os.scandir
    based: a few thousand entries take tens of milliseconds.
    """
    entries: Dict[str, Fingerprint] = {}
    if not os.path.isdir(base):
        return entries
    device = os.lstat(base).st_dev
    pending = [""]
    while pending:
        relative = pending.pop()
        with os.scandir(os.path.join(base, relative)) as listing:
            for entry in listing:
                info = entry.stat(follow_symlinks=False)
                name = os.path.join(relative, entry.name) if relative else entry.name
                if stat.S_ISDIR(info.st_mode):
                    if info.st_dev != device:
                        continue  # a mount point inside the rootfs
                    pending.append(name)
                entries[name] = _fingerprint(info)
    return entries


def _fingerprint(info: os.stat_result) -> Fingerprint:
    """What says an entry changed. A directory's time changes whenever a file inside does (and a
    symlink's time cannot be set when it is unpacked), so those are judged by mode and size only."""
    if stat.S_ISDIR(info.st_mode):
        return (info.st_mode, 0, 0)
    if stat.S_ISLNK(info.st_mode):
        return (info.st_mode, info.st_size, 0)
    return (info.st_mode, info.st_size, info.st_mtime_ns)


def tree_delta(source: Dict[str, Fingerprint], destination: Dict[str, Fingerprint]) -> Tuple[List[str], List[str]]:
    """(entries to send, in an order where parents come first; entries to delete at the destination)."""
    send = sorted((name for name, print_ in source.items() if destination.get(name) != print_),
                  key=lambda n: (n.count(os.sep), n))
    delete = sorted((name for name in destination if name not in source), key=lambda n: -n.count(os.sep))
    return send, delete


def apply_deletions(base: str, names: Iterable[str]) -> None:
    for name in names:
        path = os.path.join(base, name)
        if os.path.realpath(path).startswith(os.path.realpath(base) + os.sep):
            if os.path.isdir(path) and not os.path.islink(path):
                try:
                    os.rmdir(path)
                except OSError:
                    pass
            elif os.path.lexists(path):
                os.unlink(path)
