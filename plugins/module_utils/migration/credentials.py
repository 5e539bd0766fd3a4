# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What proves that a connection between two hosts belongs to one move, and keeps it private.

The controller makes a move's credentials (the lookup plugin autopod.autopod.move_credentials) and
gives the same ones to both modules, as a no_log option: a one-time token, and an ephemeral TLS
identity (a self-signed certificate and its key, made for this move only and valid for a day).

Every connection of the move, the control conversation and each of CRIU's page streams, is TLS 1.3
with mutual authentication: each side presents the move's certificate and accepts only a peer that
presents exactly that certificate, which only a holder of the move's key can do. The token is then
checked inside the encrypted channel (HELLO). So the pod's memory, its files and the move's messages
are encrypted, and a host without the move's credentials can neither read them nor take part.

`encryption: none` turns TLS off (a benchmark's baseline, or a network the operator trusts); the
token is then checked as before, in clear text.
"""

from __future__ import annotations

import os
import socket
import ssl
import tempfile
from typing import Any, Dict, Optional

from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError

ENCRYPTION = ("tls", "none")
CREDENTIALS_SPEC = dict(
    token=dict(type="str", required=True, no_log=True),
    certificate=dict(type="str"),
    key=dict(type="str", no_log=True),
)
LOOKUP = "autopod.autopod.move_credentials"  # what makes them, on the controller


class Credentials:
    """The move's token and, unless encryption is off, its TLS contexts for either side."""

    def __init__(self, token: str, certificate: Optional[str] = None, key: Optional[str] = None) -> None:
        if not token:
            raise AutopodError("the move's credentials have no token")
        self.token = token
        self._certificate = ssl.PEM_cert_to_DER_cert(certificate) if certificate else None
        self._client = _context(ssl.PROTOCOL_TLS_CLIENT, certificate, key) if certificate else None
        self._server = _context(ssl.PROTOCOL_TLS_SERVER, certificate, key) if certificate else None

    @classmethod
    def from_params(cls, credentials: Dict[str, Any], encryption: str) -> "Credentials":
        if encryption == "none":
            return cls(credentials["token"])
        if not credentials.get("certificate") or not credentials.get("key"):
            raise AutopodError("encryption: tls needs credentials.certificate and credentials.key; make a move's "
                               "credentials with lookup('%s') on the controller (or set encryption: none on a network "
                               "you trust)" % LOOKUP)
        return cls(credentials["token"], credentials["certificate"], credentials["key"])

    @property
    def encrypted(self) -> bool:
        return self._certificate is not None

    def secure(self, sock: socket.socket, server_side: bool, timeout: float) -> socket.socket:
        """`sock` as this move's channel: TLS with the peer proven to hold the move's key (or as it is)."""
        context = self._server if server_side else self._client
        if context is None:
            return sock
        sock.settimeout(timeout)
        try:
            # an end of stream without TLS's close_notify is a cut connection, an error, never a clean end
            secured = context.wrap_socket(sock, server_side=server_side, suppress_ragged_eofs=False)
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise AutopodError("the TLS handshake failed (%s): the peer does not hold this move's credentials"
                               % (getattr(exc, "reason", None) or exc))
        if secured.getpeercert(binary_form=True) != self._certificate:
            secured.close()
            raise AutopodError("the peer presented another certificate than this move's")
        return secured


def _context(protocol: int, certificate: str, key: Optional[str]) -> ssl.SSLContext:
    if not key:
        raise AutopodError("the move's TLS certificate came without its key")
    context = ssl.SSLContext(protocol)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False  # the peer is known by its certificate, not by a name
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_verify_locations(cadata=certificate)
        _load_identity(context, certificate + "\n" + key)
    except (ssl.SSLError, ValueError) as exc:
        raise AutopodError("the move's TLS credentials are not a usable certificate and key: %s" % exc)
    if protocol == ssl.PROTOCOL_TLS_SERVER:
        context.num_tickets = 0  # no session resumption: every connection proves the key again
    return context


def _load_identity(context: ssl.SSLContext, pem: str) -> None:
    """ssl reads a certificate chain only from a file: a private one (0600, O_EXCL), gone once read."""
    descriptor, path = tempfile.mkstemp(prefix="autopod-move-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(pem)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)
