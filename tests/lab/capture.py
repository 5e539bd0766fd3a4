"""A packet capture on the lab switch: every frame that crosses any of its ports, kept in memory.

It is a raw AF_PACKET socket in the switch's namespace (what tcpdump would open there), so it sees the
traffic between lab hosts exactly as anyone on that network would.
"""

from __future__ import annotations

import socket
import struct
import threading

from ansible_collections.autopod.autopod.plugins.module_utils import linux
from lab import topology as topo

ETH_P_ALL = 0x0003
SOL_PACKET, PACKET_STATISTICS = 263, 6
SO_RCVBUFFORCE = 33


class SwitchCapture:
    """`with SwitchCapture() as capture:` ...; then capture.data holds every frame's bytes, in order."""

    def __init__(self, limit: int = 2 << 30) -> None:
        self.limit = limit
        self.data = bytearray()
        self.frames = 0
        self.dropped = 0
        self._stop = threading.Event()

    def __enter__(self) -> "SwitchCapture":
        with linux.inside_netns(topo.netns_path(topo.SWITCH_NETNS)):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 256 << 20)
        self.sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        buffer = bytearray(1 << 17)
        while not self._stop.is_set():
            try:
                count = self.sock.recv_into(buffer)
            except socket.timeout:
                continue
            self.frames += 1
            if len(self.data) < self.limit:
                self.data += buffer[:count]

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        _packets, self.dropped = struct.unpack("II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        self.sock.close()

    def holds(self, marker: bytes) -> bool:
        return marker in self.data
