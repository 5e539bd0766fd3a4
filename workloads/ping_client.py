"""A request/response client of the counter workload: each worker sends "ping" and waits for its "pong".

The counter also streams one numbered line per tick to every connection; a worker skips those, and checks
that the counter in each pong never goes back (a pod restored from an older state would answer with a
smaller one). The memory the pod writes is checked by the counter's own "verify".
"""

from __future__ import annotations

from workloads.clients import RequestClient, Worker


class PingWorker(Worker):
    def open(self) -> None:
        self.sock = self.client.socket()
        self.reader = self.sock.makefile("rb")
        self.last_counter = -1

    def request(self, sequence: int) -> None:  # nothing to acknowledge
        self.sock.sendall(b"ping\n")
        while True:
            line = self.reader.readline()
            if not line:
                raise ConnectionError("the pod closed the connection")
            if line.startswith(b"pong "):
                break
        counter = int(line.split()[1])
        if counter < self.last_counter:
            raise RuntimeError("the counter went back from %d to %d" % (self.last_counter, counter))
        self.last_counter = counter
        return None

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class PingClient(RequestClient):
    worker_class = PingWorker
