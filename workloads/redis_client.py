"""Redis writers that keep SETs in flight, and then check that no acknowledged write is lost.

It speaks RESP itself (no library needed). Each worker sets key:<worker>:<n> and waits for +OK; a
write counts as acknowledged once the server has said OK. At the end every acknowledged key is read
back on a new connection.
"""

from __future__ import annotations

from typing import List, Tuple

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

    def request(self, sequence: int) -> Tuple[int, int]:
        reply = self.connection.call("SET", "key:%d:%d" % (self.index, sequence), "value:%d:%d" % (self.index, sequence))
        if reply != b"+OK":
            raise RuntimeError("unexpected reply %r" % reply)
        return self.index, sequence

    def close(self) -> None:
        self.connection.close()


class RedisClient(RequestClient):
    worker_class = RedisWorker

    def lost(self, batch: int = 500) -> List[Tuple[int, int]]:
        reader = RespConnection(self.socket())
        missing = []
        try:
            for worker in self.workers:
                done = worker.acknowledged
                for first in range(0, len(done), batch):
                    keys = ["key:%d:%d" % pair for pair in done[first:first + batch]]
                    values = reader.call("MGET", *keys).split(b"\n")
                    missing += [pair for pair, value in zip(done[first:first + batch], values)
                                if value != b"value:%d:%d" % pair]
        finally:
            reader.close()
        return missing
