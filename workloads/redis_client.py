"""Redis writers that keep SETs in flight, and then check that no acknowledged write is lost.

It speaks RESP itself (no library needed). Each worker writes key:<worker>:<slot> = value:<worker>:<n>
for its n-th request, slot = n modulo KEYS (so the dataset stays the size of a busy cache instead of
growing without end), and waits for +OK; a write counts as acknowledged once the server has said OK.
Writes are sequential per worker, so at the end every slot must hold the value of the last
acknowledged write to it: an older value is a lost write.
"""

from __future__ import annotations

from typing import List, Tuple

KEYS = 100000  # slots per worker

from workloads.clients import RequestClient, Worker


def encode(*args: str) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RespConnection:
    def __init__(self, sock) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def call(self, *args: str) -> bytes:
        self.sock.sendall(encode(*args))
        return self._reply()

    def _reply(self) -> bytes:
        line = self.reader.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        if line.startswith(b"$"):
            length = int(line[1:])
            return b"" if length < 0 else self.reader.read(length + 2)[:-2]
        if line.startswith(b"*"):
            return b"\n".join(self._reply() for _element in range(int(line[1:])))
        if line.startswith(b"-"):
            raise RuntimeError(line.decode().strip())
        return line.strip()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class RedisWorker(Worker):
    def open(self) -> None:
        self.connection = RespConnection(self.client.socket())
        self.count = 0  # writes acknowledged: 0 .. count - 1

    def request(self, sequence: int) -> int:
        reply = self.connection.call("SET", "key:%d:%d" % (self.index, sequence % KEYS),
                                     "value:%d:%d" % (self.index, sequence))
        if reply != b"+OK":
            raise RuntimeError("unexpected reply %r" % reply)
        return sequence

    def acknowledge(self, item: int) -> None:
        self.count = item + 1

    def acknowledged_count(self) -> int:
        return self.count

    def expected(self) -> List[Tuple[int, int]]:
        """(slot, the sequence of the last acknowledged write to it), for every slot written."""
        return [(slot, self.count - 1 - (self.count - 1 - slot) % KEYS)
                for slot in range(min(self.count, KEYS))]

    def close(self) -> None:
        self.connection.close()


class RedisClient(RequestClient):
    worker_class = RedisWorker

    def lost(self, batch: int = 1000) -> List[Tuple[int, int]]:
        """(worker, sequence) of acknowledged writes whose value is not there (an older one is)."""
        reader = RespConnection(self.socket())
        missing = []
        try:
            for worker in self.workers:
                expected = worker.expected()
                for first in range(0, len(expected), batch):
                    part = expected[first:first + batch]
                    values = reader.call("MGET", *("key:%d:%d" % (worker.index, slot) for slot, _seq in part)).split(b"\n")
                    missing += [(worker.index, seq) for (_slot, seq), value in zip(part, values)
                                if value != b"value:%d:%d" % (worker.index, seq)]
        finally:
            reader.close()
        return missing
