"""Clients that keep requests in flight against a service in a pod, and say exactly what went wrong.

Each client runs several workers, each with its own connection, each sending its next request as soon
as the previous one is answered, so some request is always in flight, also while the pod is frozen.
Every reply is checked; an acknowledged write is remembered and read back at the end. A failure (a
reset, a wrong or missing reply) ends that worker and is kept as one line: a report, never a traceback.
Latencies are kept with their completion times, so a test can ask for the longest wait of one move.
"""

from __future__ import annotations

import bisect
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from workloads.stream_client import connect


class Worker:
    """One connection's loop; subclasses send requests and check replies."""

    def __init__(self, client: "RequestClient", index: int) -> None:
        self.client, self.index = client, index
        self.acknowledged: List[Any] = []
        self.error: Optional[str] = None
        self.started_at: Optional[float] = None  # of the request in flight

    def open(self) -> None:
        raise NotImplementedError

    def request(self, sequence: int) -> Any:
        """Send request number `sequence`, wait for its reply, check it; returns what was acknowledged."""
        raise NotImplementedError

    def acknowledge(self, item: Any) -> None:
        self.acknowledged.append(item)

    def acknowledged_count(self) -> int:
        return len(self.acknowledged)

    def close(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        sequence = 0
        while not self.client.stopping.is_set():
            self.started_at = time.monotonic()
            try:
                acknowledged = self.request(sequence)
            except Exception as exc:  # the report names it; the worker stops, as a real client's request fails
                self.error = "worker %d, request %d: %s: %s" % (self.index, sequence, type(exc).__name__, exc)
                self.started_at = None
                return
            finished = time.monotonic()
            self.client.record(finished, finished - self.started_at)
            self.started_at = None
            if acknowledged is not None:
                self.acknowledge(acknowledged)
            sequence += 1


class RequestClient:
    """Several workers against one service, started from a network namespace (the lab's client host)."""

    worker_class = Worker

    def __init__(self, address: str, port: int, netns_path: Optional[str] = None, workers: int = 4,
                 connect_timeout: float = 60.0) -> None:
        self.address, self.port, self.netns_path = address, port, netns_path
        self.connect_timeout = connect_timeout
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._done: List[Tuple[float, float]] = []  # (finished at, latency), in finishing order
        self.workers = [self.worker_class(self, index) for index in range(workers)]
        for worker in self.workers:
            worker.open()
        self._threads = [threading.Thread(target=w.run, daemon=True) for w in self.workers]

    def socket(self):
        return connect(self.address, self.port, self.netns_path, self.connect_timeout)

    def start(self) -> "RequestClient":
        for thread in self._threads:
            thread.start()
        return self

    def record(self, finished: float, latency: float) -> None:
        with self._lock:
            self._done.append((finished, latency))

    def requests(self) -> int:
        with self._lock:
            return len(self._done)

    def wait_requests(self, count: int, timeout: float = 30.0) -> None:
        """Wait until `count` more requests have been answered (or a worker failed)."""
        target = self.requests() + count
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while self.requests() < target:
            if self.errors():
                raise ConnectionError("; ".join(self.errors()))
            if time.monotonic() > deadline:
                raise TimeoutError("only %d of %d replies within %.0f s" % (self.requests(), target, timeout))
            pause.wait(0.01)

    def longest_wait(self, since: float) -> float:
        """The longest a request waited, among those answered after `since` or still in flight (seconds)."""
        with self._lock:
            start = bisect.bisect_left(self._done, (since, 0.0))
            longest = max((latency for _at, latency in self._done[start:]), default=0.0)
        now = time.monotonic()
        waiting = [now - w.started_at for w in self.workers if w.started_at is not None]
        return max([longest] + waiting)

    def errors(self) -> List[str]:
        return [w.error for w in self.workers if w.error]

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(30)

    def lost(self) -> List[Any]:
        """Acknowledged writes that are not there any more (ask after stop())."""
        raise NotImplementedError

    def report(self) -> Dict[str, Any]:
        with self._lock:
            latencies = sorted(latency for _at, latency in self._done)
        return {"requests": len(latencies), "acknowledged": sum(w.acknowledged_count() for w in self.workers),
                "errors": self.errors(), "longest_wait_ms": round(latencies[-1] * 1000, 1) if latencies else None}

    def close(self) -> None:
        self.stopping.set()
        for worker in self.workers:
            try:
                worker.close()
            except OSError:
                pass
