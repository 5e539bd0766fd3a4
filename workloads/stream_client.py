"""A TCP client of the counter workload that notices every gap, repeat, reset and pause.

It reads "<seq> <counter>" lines on a background thread and keeps score. Waiting
is done on a condition variable (the next line), never with sleeps.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Dict, List, Optional, Tuple

from ansible_collections.autopod.autopod.plugins.module_utils import linux


def _namespace(path: Optional[str]):
    """Sockets for a client host on the lab bridge are made in its network namespace."""
    return linux.inside_netns(path) if path else contextlib.nullcontext()


def connect(address: str, port: int, netns_path: Optional[str], timeout: float) -> socket.socket:
    """Connect as soon as the server listens: retry refused connections until `timeout`."""
    deadline = time.monotonic() + timeout
    retry = threading.Event()
    while True:
        with _namespace(netns_path):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(max(deadline - time.monotonic(), 0.1))
        try:
            sock.connect((address, port))
            sock.settimeout(None)
            return sock
        except (ConnectionRefusedError, socket.timeout, OSError):
            sock.close()
            if time.monotonic() >= deadline:
                raise
            retry.wait(0.02)  # the server is starting: poll its port


class StreamClient:
    def __init__(self, address: str, port: int, netns_path: Optional[str] = None, timeout: float = 10.0) -> None:
        self.sock = connect(address, port, netns_path, timeout)
        self.lines = 0
        self.last_seq = 0
        self.last_counter = 0
        self.first_counter: Optional[int] = None
        self.gaps: List[Tuple[int, int]] = []
        self.repeats: List[int] = []
        self.counter_regressions: List[Tuple[int, int]] = []
        self.max_pause = 0.0
        self.max_pause_at = 0.0  # time.time() when the longest pause ended
        self.pauses: List[float] = []
        self.error: Optional[str] = None
        self.closed_by_peer = False
        self.verify_replies: List[str] = []
        self._last_time = time.monotonic()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buffer = b""
        while not self._stop:
            try:
                chunk = self.sock.recv(65536)
            except OSError as exc:
                with self._cond:
                    self.error = "%s: %s" % (type(exc).__name__, exc) if not self._stop else None
                    self._cond.notify_all()
                return
            if not chunk:
                with self._cond:
                    self.closed_by_peer = not self._stop
                    self._cond.notify_all()
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            with self._cond:
                for line in lines:
                    self._take(line.decode())
                self._cond.notify_all()

    def _take(self, line: str) -> None:
        if line.startswith("verify"):
            self.verify_replies.append(line)
            return
        now = time.monotonic()
        pause = now - self._last_time
        self._last_time = now
        seq, counter = (int(part) for part in line.split())
        if self.lines:
            self.pauses.append(pause)
            if pause > self.max_pause:
                self.max_pause, self.max_pause_at = pause, time.time()
        if seq != self.last_seq + 1:
            (self.repeats.append(seq) if seq <= self.last_seq else self.gaps.append((self.last_seq, seq)))
        if counter <= self.last_counter:
            self.counter_regressions.append((self.last_counter, counter))
        if self.first_counter is None:
            self.first_counter = counter
        self.last_seq, self.last_counter = seq, counter
        self.lines += 1

    def wait_lines(self, count: int, timeout: float = 10.0) -> int:
        """Wait until `count` more lines have arrived; returns the total. Raises on error or timeout."""
        with self._cond:
            target = self.lines + count
            if not self._cond.wait_for(lambda: self.lines >= target or self.error or self.closed_by_peer,
                                       timeout):
                raise TimeoutError("only %d of %d lines arrived within %.1fs" % (self.lines, target, timeout))
            if self.lines < target:
                raise ConnectionError(self.error or "the server closed the connection")
            return self.lines

    def verify(self, timeout: float = 30.0) -> str:
        """Ask the workload to recompute its memory; returns its reply line."""
        with self._cond:
            before = len(self.verify_replies)
        self.sock.sendall(b"verify\n")
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.verify_replies) > before or self.error, timeout):
                raise TimeoutError("no verify reply within %.1fs" % timeout)
            if self.error:
                raise ConnectionError(self.error)
            return self.verify_replies[before]

    def reset_pause_clock(self) -> None:
        with self._cond:
            self.max_pause = 0.0

    def report(self) -> Dict[str, object]:
        with self._cond:
            return {"lines": self.lines, "last_seq": self.last_seq, "gaps": list(self.gaps),
                    "repeats": list(self.repeats), "counter_regressions": list(self.counter_regressions),
                    "max_pause_ms": round(self.max_pause * 1000, 1), "max_pause_ended_at": self.max_pause_at,
                    "error": self.error,
                    "closed_by_peer": self.closed_by_peer, "first_counter": self.first_counter,
                    "last_counter": self.last_counter}

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)
