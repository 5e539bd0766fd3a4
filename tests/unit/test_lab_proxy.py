"""The lab's SSH ProxyCommand (lab/proxy.py) ends after ssh is done, even when the host never closes its end."""

from __future__ import annotations

import os
import socket
import threading

from lab import proxy


def test_the_relay_ends_when_its_input_ended_and_the_host_went_silent(monkeypatch):
    read_end, write_end = os.pipe()
    os.close(write_end)  # ssh is done
    here, vanished_host = socket.socketpair()  # the host's end stays open and says nothing: a guest killed
    monkeypatch.setattr(proxy, "LINGER_AFTER_INPUT_S", 0.2)
    with os.fdopen(read_end, "rb") as stdin:
        monkeypatch.setattr(proxy.sys, "stdin", stdin)
        relay = threading.Thread(target=proxy.relay, args=(here,), daemon=True)  # a hang must not hang the suite
        relay.start()
        relay.join(10)
        assert not relay.is_alive(), "the relay still waits for a host that will never answer"
    vanished_host.close()
    here.close()
