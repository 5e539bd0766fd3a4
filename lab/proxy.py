"""SSH ProxyCommand into the lab: connect from the controller's namespace and relay stdin/stdout.

The lab's addresses exist only inside the lab's namespaces, so the machine's ssh reaches a lab host
through this: `ProxyCommand=python lab/proxy.py %h %p`.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from ansible_collections.autopod.autopod.plugins.module_utils import linux  # noqa: E402
from lab import topology as topo  # noqa: E402


# ssh closes our input when it is done; the host then closes its end. A host that vanished (a guest killed
# with the lab) never does, and without a limit this relay would wait for it forever, an orphan.
LINGER_AFTER_INPUT_S = 30.0


def relay(sock: socket.socket) -> None:
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "in")
    selector.register(sock, selectors.EVENT_READ, "sock")
    deadline = None
    while True:
        events = selector.select(None if deadline is None else max(deadline - time.monotonic(), 0))
        if not events and deadline is not None and time.monotonic() >= deadline:
            return
        for key, _events in events:
            if key.data == "in":
                data = os.read(sys.stdin.fileno(), 65536)
                if not data:
                    sock.shutdown(socket.SHUT_WR)
                    selector.unregister(sys.stdin.fileno())
                    deadline = time.monotonic() + LINGER_AFTER_INPUT_S
                    continue
                sock.sendall(data)
            else:
                data = sock.recv(65536)
                if not data:
                    return
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    with linux.inside_netns(topo.netns_path(topo.CONTROLLER_NETNS)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect((host, port))
    relay(sock)


if __name__ == "__main__":
    main()
