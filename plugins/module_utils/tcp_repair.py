# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Taking a pod's TCP connections out of repair mode from outside the pod.

CRIU puts a pod's established connections in repair mode to dump them, and restores them in repair
mode. Two moments need them out of it from outside the pod, through a duplicate of each socket
(pidfd_getfd, as CRIU itself works on its own duplicates):
- a restored pod, while it is held (holds.py) and just after it was put on its bridge: CRIU 4.2 leaves
  repair mode without the window probe the kernel would send (TCP_REPAIR_OFF_NO_WP), so a connection
  whose last segments were acknowledged by the peer while the pod was frozen (the acknowledgements
  were dropped) waits out TCP's 1-second initial retransmission timeout. Leaving repair mode with
  TCP_REPAIR_OFF sends the probe at once; the peer answers with its acknowledgement and the
  connection goes on (docs/design.md, "Holding a pod's network").
- a source copy that CRIU left stopped and locked, when it is revived (revive.py).

A restored IPv4 connection also gets its segment size back on the way out. A socket's MSS is computed when
it connects, and CRIU connects it in repair mode before it can restore the peer's MSS (TCP_REPAIR_OPTIONS
needs an established socket), so the kernel computes it from its 536-byte default and nothing recomputes it
afterwards: the connection would send 524-byte segments for the rest of its life (ss -ti showed mss:524
after a move, 1448 before it). Setting the socket's IP options, to what they already are, makes the kernel
compute it again from the path MTU and the restored MSS (docs/design.md, "A restored connection's segment
size"). IPv6 connections keep the short segments (nothing as simple recomputes theirs).
"""

from __future__ import annotations

import os
import socket
from typing import Iterable, List, Tuple

from ansible_collections.autopod.autopod.plugins.module_utils import linux

TCP_REPAIR = 19  # linux/tcp.h
TCP_REPAIR_OFF = 0  # leaving repair mode sends a window probe
IP_OPTIONS_MAX = 40  # bytes of IPv4 options a header can hold


def _socket_fds(pid: int) -> List[int]:
    directory = "/proc/%d/fd" % pid
    found = []
    for name in os.listdir(directory):
        try:
            if os.readlink(os.path.join(directory, name)).startswith("socket:"):
                found.append(int(name))
        except OSError:
            continue  # closed meanwhile
    return found


def leave_repair(pids: Iterable[int]) -> List[Tuple[int, int]]:
    """Take every TCP socket of these processes that is in repair mode out of it; returns (pid, fd) of each."""
    changed = []
    for pid in pids:
        pidfd = os.pidfd_open(pid)
        try:
            for fd in _socket_fds(pid):
                try:
                    copy = socket.socket(fileno=linux.pidfd_getfd(pidfd, fd))
                except OSError:
                    continue
                with copy:
                    if copy.type == socket.SOCK_STREAM and copy.family in (socket.AF_INET, socket.AF_INET6) \
                            and copy.getsockopt(socket.IPPROTO_TCP, TCP_REPAIR):
                        if copy.family == socket.AF_INET:
                            _sync_segment_size(copy)
                        copy.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF)
                        changed.append((pid, fd))
        finally:
            os.close(pidfd)
    return changed


def _sync_segment_size(sock: socket.socket) -> None:
    """Have the kernel compute the connection's MSS again: setting IP_OPTIONS on a TCP socket does it
    (do_ip_setsockopt calls icsk_sync_mss); the options are set back to what they are."""
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, sock.getsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, IP_OPTIONS_MAX))
