# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rootfs of a pod in copy mode travels as a delta against the destination's copy, judged by type,
size, mode and modification time, so a second pass while the pod is frozen sends only what changed
since the first."""

from __future__ import annotations

import os
import stat
from typing import Dict, Iterable, List, Tuple

Fingerprint = Tuple[int, int, int]  # (mode, size, mtime_ns)


def scan_tree(base: str) -> Dict[str, Fingerprint]:
    """Every entry under `base` (not crossing into other filesystems) with what tells a change.

    Run while the pod is frozen (the second pass of a copy-storage move), so it is os.scandir based and
    keeps the work per entry to one lstat: a Debian rootfs of 10,346 entries takes 65-70 ms here (80 ms
    with a path join and a function call per entry; `find` itself takes 40-50 ms).
    """
    entries: Dict[str, Fingerprint] = {}
    if not os.path.isdir(base):
        return entries
    device = os.lstat(base).st_dev
    pending = [(base, "")]  # (directory, its name relative to base with a trailing separator)
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as listing:
            for entry in listing:
                info = entry.stat(follow_symlinks=False)
                name = prefix + entry.name
                kind = stat.S_IFMT(info.st_mode)
                # A directory's time changes whenever a file inside does (and a symlink's time cannot be set
                # when it is unpacked), so those are judged by mode and size only.
                if kind == stat.S_IFDIR:
                    if info.st_dev != device:
                        continue  # a mount point inside the rootfs
                    pending.append((entry.path, name + os.sep))
                    entries[name] = (info.st_mode, 0, 0)
                elif kind == stat.S_IFLNK:
                    entries[name] = (info.st_mode, info.st_size, 0)
                else:
                    entries[name] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return entries


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
