"""The initramfs of a lab guest, built by the project for each kernel: busybox, the modules the guest
needs (with their dependencies, decompressed), and an /init that mounts the guest's root over 9p.

The kernel command line carries the guest's own settings (the kernel hands `key=value` words it
does not know to /init as environment variables): once the root is mounted, PID 1 becomes
`$autopod_python $autopod_init`, and `autopod_host` (the guest's name) stays in its environment.
"""

from __future__ import annotations

import gzip
import lzma
import os
import re
import stat
from typing import Dict, Iterator, List, Tuple

BUSYBOX = "/bin/busybox"  # Debian's busybox-static
# What the guest needs of its kernel, in the order docs/design.md gives: virtio and 9p for its root,
# virtio-net and a bridge for the lab network, and what CRIU and the pods use. crc32c_generic is
# libcrc32c's soft dependency (it looks the algorithm up by name at load time; nothing here would
# load it on demand).
MODULES = ("virtio_pci", "virtio_net", "9pnet_virtio", "9p", "bridge", "veth", "tun", "crc32c_generic", "nf_tables",
           "nft_compat", "inet_diag", "tcp_diag", "udp_diag", "unix_diag", "netlink_diag", "raw_diag", "af_packet_diag")

INIT = """#!/bin/sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev
while read -r module; do insmod "/modules/$module" || echo "initramfs: $module did not load"; done < /modules/order
mkdir -p /newroot
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,access=client root /newroot; then
    echo "initramfs: no root over 9p"; sleep 5; reboot -f
fi
umount /proc
mount --move /dev /newroot/dev
exec switch_root /newroot "$autopod_python" "$autopod_init"
"""


def _module_index(modules_dir: str) -> Dict[str, str]:
    """{module name with '-' as '_': path of its .ko / .ko.xz / .ko.zst}."""
    index = {}
    for directory, _dirs, files in os.walk(os.path.join(modules_dir, "kernel")):
        for name in files:
            base = re.sub(r"\.ko(\.xz|\.zst|\.gz)?$", "", name)
            if base != name:
                index[base.replace("-", "_")] = os.path.join(directory, name)
    return index


def _module_bytes(path: str) -> bytes:
    if path.endswith(".xz"):
        with lzma.open(path) as handle:
            return handle.read()
    if path.endswith(".gz"):
        with gzip.open(path) as handle:
            return handle.read()
    if path.endswith(".zst"):
        raise RuntimeError("zstd-compressed module %s: not supported by this initramfs builder" % path)
    with open(path, "rb") as handle:
        return handle.read()


def _depends(module: bytes) -> List[str]:
    """The module's dependencies, from the `depends=` string of its .modinfo section."""
    found = re.search(rb"\x00depends=([^\x00]*)\x00", module)
    return [d.decode().replace("-", "_") for d in found.group(1).split(b",") if d] if found else []


def load_order(modules_dir: str, wanted: Tuple[str, ...] = MODULES) -> List[Tuple[str, bytes]]:
    """(name, module bytes) of every wanted module and its dependencies, each after what it needs.

    A wanted module the kernel has built in (no file) is skipped."""
    index, order, seen = _module_index(modules_dir), [], set()

    def visit(name: str) -> None:
        if name in seen or name not in index:
            return
        seen.add(name)
        content = _module_bytes(index[name])
        for dependency in _depends(content):
            visit(dependency)
        order.append((name, content))
    for name in wanted:
        visit(name)
    return order


def _cpio_entries(modules: List[Tuple[str, bytes]]) -> Iterator[Tuple[str, int, bytes]]:
    for directory in ("bin", "dev", "proc", "sys", "modules", "newroot"):
        yield directory, stat.S_IFDIR | 0o755, b""
    with open(BUSYBOX, "rb") as handle:
        yield "bin/busybox", stat.S_IFREG | 0o755, handle.read()
    yield "bin/sh", stat.S_IFLNK | 0o777, b"busybox"
    yield "init", stat.S_IFREG | 0o755, INIT.encode()
    yield "modules/order", stat.S_IFREG | 0o644, "".join("%s.ko\n" % name for name, _content in modules).encode()
    for name, content in modules:
        yield "modules/%s.ko" % name, stat.S_IFREG | 0o644, content


def _newc(number: int, name: str, mode: int, data: bytes) -> bytes:
    """One entry of a cpio archive in the "newc" format the kernel unpacks."""
    encoded = name.encode() + b"\x00"
    fields = (number, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
    header = b"070701" + b"".join(b"%08X" % field for field in fields)
    padded = header + encoded
    padded += b"\x00" * (-len(padded) % 4)
    return padded + data + b"\x00" * (-len(data) % 4)


def build(modules_dir: str, target: str) -> str:
    """Write the gzip-compressed initramfs for the kernel whose modules are in `modules_dir`."""
    modules = load_order(modules_dir)
    if not modules:
        raise RuntimeError("no kernel modules under %s" % modules_dir)
    parts = [_newc(number, name, mode, data)
             for number, (name, mode, data) in enumerate(_cpio_entries(modules), start=1)]
    parts.append(_newc(0, "TRAILER!!!", 0, b""))
    partial = target + ".partial"
    with gzip.open(partial, "wb", compresslevel=1) as handle:
        handle.write(b"".join(parts))
    os.replace(partial, target)
    return target
