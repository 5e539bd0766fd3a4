# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read CRIU's images (statistics, pagemaps) without crit or protobuf, and change the one field AutoPod changes
(the inventory's network lock method, skip_network_unlock).

An image is a 32-bit magic (service images carry a second one), then entries,
each a 32-bit little-endian length followed by a protobuf message. The messages
read here hold only varints and nested messages, so a small decoder suffices.
Field numbers are those of CRIU's images/*.proto.
"""

from __future__ import annotations

import os
import struct
from typing import Any, Dict, Iterator, List, Tuple

IMG_SERVICE_MAGIC = 0x55105940
IMG_COMMON_MAGIC = 0x54564319
PE_PARENT, PE_LAZY, PE_PRESENT = 1, 2, 4
PAGE_SIZE = 4096
INVENTORY = "inventory.img"
INVENTORY_NETWORK_LOCK = 11  # images/inventory.proto: network_lock_method
NETWORK_LOCK_SKIP = 2  # criu/include/cr_options.h: iptables 0, nftables 1, skip 2 (what a dump records)

_DUMP_FIELDS = {1: "freezing_time_us", 2: "frozen_time_us", 3: "memdump_time_us", 4: "memwrite_time_us",
                5: "pages_scanned", 6: "pages_skipped_parent", 7: "pages_written", 8: "irmap_resolve_us",
                9: "pages_lazy", 10: "page_pipes", 11: "page_pipe_bufs"}
_RESTORE_FIELDS = {1: "pages_compared", 2: "pages_skipped_cow", 3: "forking_time_us", 4: "restore_time_us",
                   5: "pages_restored"}


class ImageFormatError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ImageFormatError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _fields(data: bytes) -> Iterator[Tuple[int, Any, int, int]]:
    """Each field of one protobuf message: (number, int or bytes, where its key starts, where it ends)."""
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ImageFormatError("truncated field %d" % number)
            value = data[pos:pos + length]
            pos += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value = int.from_bytes(data[pos:pos + size], "little")
            pos += size
        else:
            raise ImageFormatError("unsupported wire type %d" % wire)
        yield number, value, start, pos


def _message(data: bytes) -> Dict[int, Any]:
    """Decode one protobuf message into {field number: int or bytes}."""
    return {number: value for number, value, _start, _end in _fields(data)}


def _with_varint(data: bytes, number: int, value: int) -> bytes:
    """The message with varint field `number` set to `value` (added at its end if it has none)."""
    field = _encode_varint(number << 3) + _encode_varint(value)
    kept = [data[start:end] for found, _value, start, end in _fields(data) if found != number]
    return b"".join(kept) + field


def _entries(raw: bytes) -> List[bytes]:
    """All length-prefixed entries of an image, after its magic."""
    pos = 4
    if len(raw) >= 4 and struct.unpack_from("<I", raw)[0] in (IMG_SERVICE_MAGIC, IMG_COMMON_MAGIC):
        pos = 8
    if len(raw) < pos + 4:
        raise ImageFormatError("image too short")
    entries = []
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise ImageFormatError("truncated entry header")
        (size,) = struct.unpack_from("<I", raw, pos)
        entry = raw[pos + 4:pos + 4 + size]
        if len(entry) != size:
            raise ImageFormatError("truncated entry")
        entries.append(entry)
        pos += 4 + size
    return entries


def _first_entry(raw: bytes) -> bytes:
    return _entries(raw)[0]


def _pagemap_ranges(raw: bytes) -> Tuple[int, List[Tuple[int, int]]]:
    """(pages_id, [(flags, number of pages)]) of a pagemap image.

    The first entry names the pages file; each further entry is a range of pages
    (images/pagemap.proto: vaddr=1, nr_pages=2, in_parent=3, flags=4; CRIU 4
    writes the page count as a 64-bit field 5 and leaves field 2 at 0).
    """
    entries = _entries(raw)
    head = _message(entries[0])
    ranges = []
    for entry in entries[1:]:
        fields = _message(entry)
        flags = fields.get(4, PE_PARENT if fields.get(3) else PE_PRESENT)
        ranges.append((flags, fields.get(5, fields.get(2, 0))))
    return head.get(1, 0), ranges


def pagemap_pages(raw: bytes) -> Tuple[int, int]:
    """(pages_id, number of pages this pagemap expects in pages-<pages_id>.img): the ranges
    flagged present and not in a parent image. A post-copy dump flags the ranges it leaves for
    the page server lazy only, so they are not counted."""
    pages_id, ranges = _pagemap_ranges(raw)
    return pages_id, sum(n for flags, n in ranges if flags & PE_PRESENT and not flags & PE_PARENT)


def lazy_pages(image_dir: str) -> int:
    """How many pages a post-copy dump left to be fetched on demand (flagged lazy, not present)."""
    total = 0
    for name in os.listdir(image_dir):
        if name.startswith("pagemap-") and name.endswith(".img"):
            with open(os.path.join(image_dir, name), "rb") as handle:
                _pages_id, ranges = _pagemap_ranges(handle.read())
            total += sum(n for flags, n in ranges if flags & PE_LAZY and not flags & PE_PRESENT)
    return total


def parse_stats(raw: bytes) -> Dict[str, Any]:
    """Turn a stats-dump or stats-restore image into a flat dict with named fields."""
    stats = _message(_first_entry(raw))
    if 1 in stats:
        names, kind = _DUMP_FIELDS, "dump"
        body = stats[1]
    elif 2 in stats:
        names, kind = _RESTORE_FIELDS, "restore"
        body = stats[2]
    else:
        raise ImageFormatError("neither dump nor restore statistics in the image")
    decoded = _message(body)
    result: Dict[str, Any] = {"kind": kind}
    result.update({names[k]: v for k, v in decoded.items() if k in names})
    return result


def damaged_pages(image_dir: str) -> List[str]:
    """Pages files shorter or longer than their pagemaps say.

    CRIU's restorer retries a short read of a pages file forever (preadv returns
    0 at end of file), so a truncated image must be caught before CRIU sees it.
    """
    problems = []
    for name in sorted(os.listdir(image_dir)):
        if not (name.startswith("pagemap-") and name.endswith(".img")):
            continue
        with open(os.path.join(image_dir, name), "rb") as handle:
            try:
                pages_id, pages = pagemap_pages(handle.read())
            except ImageFormatError as exc:
                problems.append("%s is unreadable (%s)" % (name, exc))
                continue
        pages_file = os.path.join(image_dir, "pages-%d.img" % pages_id)
        size = os.path.getsize(pages_file) if os.path.exists(pages_file) else 0
        if size != pages * PAGE_SIZE:
            problems.append("pages-%d.img has %d bytes where %s expects %d"
                            % (pages_id, size, name, pages * PAGE_SIZE))
    return problems


def skip_network_unlock(image_dir: str) -> None:
    """Record in a dump's inventory that it took no network lock, so that its restore removes none.

    CRIU's restore ignores --network-lock and unlocks with the dump's method: with nftables it deletes the
    table CRIU-<the dump's run id>. That table is in the namespace the pod was dumped from; AutoPod restores
    a pod into a namespace it has just built (network.build_identity), which never had it, so the delete
    only fails ("delete table inet CRIU-...: No such file or directory"), after 20 ms of the freeze spent
    starting nftables (docs/design.md, "Where a small pod's freeze goes").
    """
    path = os.path.join(image_dir, INVENTORY)
    with open(path, "rb") as handle:
        raw = handle.read()
    entries = _entries(raw)  # after the inventory's one magic
    if len(entries) != 1:
        raise ImageFormatError("%s holds %d entries, not one" % (INVENTORY, len(entries)))
    message = _with_varint(entries[0], INVENTORY_NETWORK_LOCK, NETWORK_LOCK_SKIP)
    temporary = path + ".tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(raw[:4] + struct.pack("<I", len(message)) + message)
    os.replace(temporary, path)
