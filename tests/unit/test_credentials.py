"""The move's credentials and the page-stream relay: TLS 1.3 between holders of one move's credentials only,
and every byte relayed both ways through it, ends of stream included."""

from __future__ import annotations

import socket
import threading

import pytest

from ansible_collections.autopod.autopod.plugins.lookup.move_credentials import make_credentials
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.migration.credentials import Credentials
from ansible_collections.autopod.autopod.plugins.module_utils.migration.streams import Relay

SECRET = b"marker-in-the-pods-memory " * 4000


def handshake(server: Credentials, client: Credentials):
    """Both ends of one connection, each secured with its own credentials; an end that failed is its error."""
    near, far = socket.socketpair()
    ends = {}

    def serve() -> None:
        try:
            ends["server"] = server.secure(far, True, 5)
        except AutopodError as exc:
            ends["server"] = exc
    thread = threading.Thread(target=serve)
    thread.start()
    try:
        ends["client"] = client.secure(near, False, 5)
    except AutopodError as exc:
        ends["client"] = exc
    thread.join()
    return ends["client"], ends["server"]


def test_holders_of_one_moves_credentials_talk_tls_13_and_nobody_else_does():
    move = Credentials(**make_credentials())
    client, server = handshake(move, move)
    assert client.version() == "TLSv1.3" and server.version() == "TLSv1.3"
    client.sendall(b"hello")
    assert server.recv(5) == b"hello"
    for server_side, client_side in ((move, Credentials(**make_credentials())),
                                     (Credentials(**make_credentials()), move)):
        client, server = handshake(server_side, client_side)
        assert isinstance(server, AutopodError) and "TLS handshake failed" in server.msg
        assert isinstance(client, AutopodError)


def test_credentials_without_a_certificate_are_refused_unless_encryption_is_off():
    token_only = {"token": "t" * 32, "certificate": None, "key": None}
    with pytest.raises(AutopodError, match="encryption: tls needs credentials.certificate"):
        Credentials.from_params(token_only, "tls")
    clear = Credentials.from_params(token_only, "none")
    near, _far = socket.socketpair()
    assert not clear.encrypted and clear.secure(near, False, 5) is near
    with pytest.raises(AutopodError, match="not a usable certificate"):
        Credentials("t" * 32, make_credentials()["certificate"], make_credentials()["key"])


def test_the_relay_carries_both_directions_through_tls_and_passes_each_end_of_stream_on():
    """As CRIU's page streams talk: the last message of each side is answered before that side closes
    (a peer may not send after our close_notify: streams.py, _close_finished)."""
    move = Credentials(**make_credentials())
    criu_end, relay_end = socket.socketpair()
    remote, peer = handshake(move, move)[::-1]  # the relay holds the client end; `peer` is the other host
    relay = Relay(relay_end, remote, stall_timeout=5, name="page").start()
    received = bytearray()
    ended = threading.Event()

    def serve_peer() -> None:
        while len(received) < len(SECRET):
            received.extend(peer.recv(1 << 16))
        peer.sendall(b"all in")
        ended.set() if peer.recv(1) == b"" else None  # the relay's close_notify, once CRIU here closed
        peer.unwrap()
    server = threading.Thread(target=serve_peer)
    server.start()
    criu_end.sendall(SECRET)
    answer = b""
    while len(answer) < len(b"all in"):
        answer += criu_end.recv(64)
    criu_end.shutdown(socket.SHUT_WR)
    assert criu_end.recv(64) == b""  # the peer's close_notify, passed on as an end of stream
    server.join(10)
    assert relay.wait(10) and relay.finished_cleanly, relay.error
    assert ended.is_set() and bytes(received) == SECRET and answer == b"all in"
    assert relay.to_remote == len(SECRET) and relay.from_remote == len(b"all in")
    relay.close()


def test_a_peer_that_takes_nothing_fails_the_relay_within_its_stall_limit():
    near, far = socket.socketpair()
    far.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    criu_end, relay_end = socket.socketpair()
    relay = Relay(relay_end, near, stall_timeout=1, name="page").start()
    writer = threading.Thread(target=lambda: _send_until_broken(criu_end), daemon=True)
    writer.start()
    assert relay.wait(10), "the relay never gave up"
    assert "the peer took nothing for 1 seconds" in relay.error
    writer.join(5)
    assert not writer.is_alive(), "CRIU's end was not cut"
    relay.close()


def _send_until_broken(sock: socket.socket) -> None:
    try:
        while True:
            sock.sendall(SECRET)
    except OSError:
        pass
