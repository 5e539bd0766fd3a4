"""A Redis client that writes through a whole run and then checks that no acknowledged write is lost.

It speaks RESP itself (no library needed): one SET at a time, each waiting for its +OK; a write
counts as acknowledged once the server has said OK. At the end, every acknowledged key is read back.
"""

from __future__ import annotations

import threading
import time
from typing import Dict, List, Optional

from workloads.stream_client import connect


def _encode(*args: str) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RedisWriter:
    def __init__(self, address: str, port: int = 6379, netns_path: Optional[str] = None) -> None:
        self.sock = connect(address, port, netns_path, timeout=60)
        self.reader = self.sock.makefile("rb")
        self.acknowledged = 0
        self.error: Optional[str] = None
        self.max_latency = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)

    def _call(self, *args: str) -> bytes:
        self.sock.sendall(_encode(*args))
        line = self.reader.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        if line.startswith(b"$"):
            length = int(line[1:])
            return b"" if length < 0 else self.reader.read(length + 2)[:-2]
        if line.startswith(b"*"):
            return b"\n".join(self._bulk() for _element in range(int(line[1:])))
        if line.startswith(b"-"):
            raise RuntimeError(line.decode().strip())
        return line.strip()

    def _bulk(self) -> bytes:
        line = self.reader.readline()
        length = int(line[1:])
        return b"" if length < 0 else self.reader.read(length + 2)[:-2]

    def start(self) -> "RedisWriter":
        self._thread.start()
        return self

    def _write(self) -> None:
        index = self.acknowledged
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                reply = self._call("SET", "key:%d" % index, "value:%d" % index)
            except (OSError, ConnectionError, RuntimeError) as exc:
                self.error = "%s: %s" % (type(exc).__name__, exc)
                return
            if reply != b"+OK":
                self.error = "unexpected reply %r" % reply
                return
            self.max_latency = max(self.max_latency, time.monotonic() - started)
            index += 1
            self.acknowledged = index

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def lost(self, batch: int = 500) -> List[int]:
        """Acknowledged writes whose value is not there any more."""
        missing = []
        for first in range(0, self.acknowledged, batch):
            keys = ["key:%d" % i for i in range(first, min(first + batch, self.acknowledged))]
            values = self._call("MGET", *keys).split(b"\n")
            missing += [first + n for n, value in enumerate(values) if value != b"value:%d" % (first + n)]
        return missing

    def report(self) -> Dict[str, object]:
        return {"acknowledged_writes": self.acknowledged, "error": self.error,
                "slowest_write_ms": round(self.max_latency * 1000, 1)}

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
