# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files over the migration channel: a tar stream cut into length-prefixed chunks and ended by an empty
one (a tar reader stops at the first end-of-archive block and may leave padding unread, so the stream's
end is marked outside the tar). The sender keeps exact modification times; the receiver refuses any
member that would land outside its base or create a device other than a minimal /dev's."""

from __future__ import annotations

import os
import struct
import tarfile
from typing import Dict, Iterable

from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError

_CHUNK_HEADER = struct.Struct("!I")
MTIME_NS = "AUTOPOD.mtime_ns"
# Members are checked by Guard; Python 3.12+ would otherwise warn about, and 3.14 change,
# its default extraction filter.
_TRUSTED = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}


def send_tree(channel, base: str, names: Iterable[str]) -> int:
    """Stream the named entries of `base` (relative paths, parents before children) as a tar; returns the bytes sent."""
    chunks = _ChunkWriter(channel)
    with tarfile.open(fileobj=chunks, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_ChunkWriter.SIZE) as archive:
        for name in names:
            path = os.path.join(base, name)
            info = archive.gettarinfo(path, arcname=name)
            info.pax_headers[MTIME_NS] = str(os.lstat(path).st_mtime_ns)
            if info.isfile():
                with open(path, "rb") as content:
                    archive.addfile(info, Padded(content))
            else:
                archive.addfile(info)
    chunks.close()
    return chunks.count


def receive_tree(channel, base: str) -> int:
    """Unpack a tar stream into `base`, refusing anything that would land outside it; returns the bytes read."""
    chunks = _ChunkReader(channel)
    guard = Guard(base)
    with tarfile.open(fileobj=chunks, mode="r|") as archive:
        for member in archive:
            guard.check(member)
            _make_room(os.path.join(base, member.name), member)
            archive.extract(member, base, set_attrs=True, numeric_owner=True, **_TRUSTED)
            if not member.isdir() and not member.issym():
                _exact_mtime(os.path.join(base, member.name), member)
    chunks.drain()
    return chunks.count


class Padded:
    """A file being sent while the pod runs may shrink between its stat and its read (a log rotated, a file
    rewritten with `>`); tarfile would then fail the whole move with "unexpected end of data". What is
    missing is sent as zeroes instead: the entry carries the mtime of its stat, which the file no longer
    has, so the pass made while the pod is frozen sends it again, whole."""

    def __init__(self, content) -> None:
        self.content = content

    def read(self, size: int = -1) -> bytes:
        data = self.content.read(size)
        return data + bytes(size - len(data)) if 0 < size and len(data) < size else data


class _ChunkWriter:
    """A file-like writer that frames what it is given as length-prefixed chunks."""

    SIZE = 1 << 20

    def __init__(self, channel) -> None:
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
        self.channel.write_bytes(_CHUNK_HEADER.pack(len(chunk)))
        if len(chunk):
            self.channel.write_bytes(chunk)
        self.count += _CHUNK_HEADER.size + len(chunk)

    def close(self) -> None:
        if self.buffer:
            self._emit(bytes(self.buffer))
            self.buffer = bytearray()
        self._emit(b"")  # the end of this tree


class _ChunkReader:
    """The reading side of _ChunkWriter: a file-like reader over the chunks, up to the empty one."""

    def __init__(self, channel) -> None:
        self.channel, self.count, self.ended = channel, 0, False
        self.chunk, self.offset = b"", 0

    def _next(self) -> None:
        (length,) = _CHUNK_HEADER.unpack(self.channel.read_exact(_CHUNK_HEADER.size))
        self.chunk = self.channel.read_exact(length) if length else b""
        self.offset = 0
        self.count += _CHUNK_HEADER.size + length
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


class Guard:
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
