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
