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

    def _write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise ChannelTimeout("migration channel: the other host took nothing for %d seconds"
                                 % self.sock.gettimeout())
        except OSError as exc:
            raise AutopodError("migration channel: %s" % exc)

    def send(self, message: Dict[str, Any]) -> None:
        data = json.dumps(message).encode()
        self._write(_HEADER.pack(len(data)) + data)
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
        chunks = _ChunkWriter(self)
        with tarfile.open(fileobj=chunks, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_ChunkWriter.SIZE) as archive:
            for name in names:
                path = os.path.join(base, name)
                info = archive.gettarinfo(path, arcname=name)
                info.pax_headers[MTIME_NS] = str(os.lstat(path).st_mtime_ns)
                if info.isfile():
                    with open(path, "rb") as content:
                        archive.addfile(info, _Padded(content))
                else:
                    archive.addfile(info)
        chunks.close()
        self.sent += chunks.count
        return chunks.count

    def receive_tree(self, base: str) -> int:
        """Unpack a tar stream into `base`, refusing anything that would land outside it."""
        chunks = _ChunkReader(self)
        guard = _Guard(base)
        with tarfile.open(fileobj=chunks, mode="r|") as archive:
            for member in archive:
                guard.check(member)
                _make_room(os.path.join(base, member.name), member)
                archive.extract(member, base, set_attrs=True, numeric_owner=True, **_TRUSTED)
                if not member.isdir() and not member.issym():
                    _exact_mtime(os.path.join(base, member.name), member)
        chunks.drain()
        return chunks.count

    def close(self) -> None:
        self.sock.close()


class _Padded:
    """A file being sent while the pod runs may shrink between its stat and its read (a log rotated, a file
    rewritten with `>`); tarfile would then fail the whole move with "unexpected end of data". What is
    missing is sent as zeroes instead: the entry carries the mtime of its stat, which the file no longer
    has, so the pass made while the pod is frozen sends it again, whole."""

    def __init__(self, content) -> None:
        self.content = content

    def read(self, size: int = -1) -> bytes:
        data = self.content.read(size)
        return data + bytes(size - len(data)) if 0 < size and len(data) < size else data


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

    def __init__(self, channel: Channel) -> None:
        self.channel, self.count, self.buffer = channel, 0, bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        if len(self.buffer) >= self.SIZE:
            view = memoryview(self.buffer)
            whole = len(self.buffer) - len(self.buffer) % self.SIZE
            for start in range(0, whole, self.SIZE):
                self._emit(view[start:start + self.SIZE])
            view.release()
            del self.buffer[:whole]
        return len(data)

    def _emit(self, chunk) -> None:
        self.channel._write(_HEADER.pack(len(chunk)))
        if len(chunk):
            self.channel._write(chunk)
        self.count += _HEADER.size + len(chunk)

    def close(self) -> None:
        if self.buffer:
            self._emit(bytes(self.buffer))
            self.buffer = bytearray()
        self._emit(b"")  # the end of this tree


class _ChunkReader:
    """The reading side of _ChunkWriter: a file-like reader over the chunks, up to the empty one."""

    def __init__(self, channel: Channel) -> None:
        self.channel, self.count, self.ended = channel, 0, False
        self.chunk, self.offset = b"", 0

    def _next(self) -> None:
        (length,) = _HEADER.unpack(self.channel.read_exact(_HEADER.size))
        self.chunk = self.channel.read_exact(length) if length else b""
        self.offset = 0
        self.count += _HEADER.size + length
        self.ended = not length

    def read(self, size: int = -1) -> bytes:
        parts = []
        while size != 0:
            if self.offset == len(self.chunk):
                if self.ended:
                    break
                self._next()
                continue
            take = len(self.chunk) - self.offset if size < 0 else min(size, len(self.chunk) - self.offset)
            parts.append(self.chunk[self.offset:self.offset + take])
            self.offset += take
            size -= take if size > 0 else 0
        return b"".join(parts)

    def drain(self) -> None:
        """Skip what the tar reader left (padding after its end-of-archive block)."""
        while not self.ended:
            self._next()
        self.chunk, self.offset = b"", 0


def _make_room(path: str, member: tarfile.TarInfo) -> None:
    """Remove what a changed entry replaces: tarfile overwrites regular files, but a hard link or a
    device node it recreates would fail with "File exists" (a file changed since the first pass). A
    symlink always goes, even for a directory: its owner and mode would otherwise be set through it."""
    if os.path.islink(path) or (not member.isdir() and os.path.lexists(path) and not os.path.isdir(path)):
        os.unlink(path)


def _exact_mtime(path: str, member: tarfile.TarInfo) -> None:
    """tarfile keeps times as floats, which lose nanoseconds; the next delta compares them exactly,
    so the sender puts them in a PAX header of their own."""
    if MTIME_NS in member.pax_headers:
        nanoseconds = int(member.pax_headers[MTIME_NS])
        os.utime(path, ns=(nanoseconds, nanoseconds))


# The device nodes a rootfs may carry: those of a minimal /dev (null, zero, full, random, urandom, tty,
# console, ptmx), as debootstrap makes them. Any other (a disk, /dev/mem) would give whoever can open
# it on the destination what the sending host chose, so it is refused.
HARMLESS_DEVICES = {(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)}


class _Guard:
    """What a received tree may contain: every member, and every hard link's target, lands inside `base`;
    device nodes only from HARMLESS_DEVICES.

    Names must be relative and free of `..`; the directory a member lands in is resolved on this host
    (so a symlink the tree made earlier cannot carry a later member outside), and cached, since a rootfs
    has thousands of members in a few hundred directories. The member itself is never written through
    an existing symlink: _make_room removes what it replaces first.
    """

    def __init__(self, base: str) -> None:
        self.base = os.path.realpath(base)
        self._inside: Dict[str, bool] = {}

    def _lands_inside(self, name: str, what: str) -> None:
        parts = name.split("/")
        if not name or os.path.isabs(name) or ".." in parts:
            raise AutopodError("migration channel: refused %s %r, which is not a plain relative path" % (what, name))
        parent = os.path.dirname(os.path.normpath(name))
        if parent not in self._inside:
            real = os.path.realpath(os.path.join(self.base, parent))
            self._inside[parent] = real == self.base or real.startswith(self.base + os.sep)
        if not self._inside[parent]:
            raise AutopodError("migration channel: refused %s %r, which points outside %s" % (what, name, self.base))

    def check(self, member: tarfile.TarInfo) -> None:
        self._lands_inside(member.name, "member")
        if member.isblk() or (member.ischr() and (member.devmajor, member.devminor) not in HARMLESS_DEVICES):
            raise AutopodError("migration channel: refused device node %r (%s %d:%d): a pod's rootfs carries only "
                               "null, zero, full, random, urandom, tty, console and ptmx"
                               % (member.name, "block" if member.isblk() else "character", member.devmajor,
                                  member.devminor))
        if member.islnk():
            self._lands_inside(member.linkname, "hard link target")
        if member.issym():  # a symlink may now stand where a directory was resolved before
            prefix = os.path.normpath(member.name)
            self._inside = {k: v for k, v in self._inside.items() if k != prefix and not k.startswith(prefix + "/")}


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
