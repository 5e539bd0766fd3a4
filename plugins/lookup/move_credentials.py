# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Makes one move's credentials on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
name: move_credentials
author:
  - AutoPod team (@autopod)
short_description: Make one move's credentials (a token and an ephemeral TLS identity)
version_added: 0.2.0
description:
  - "Returns a dictionary with C(token) (32 hex digits), C(certificate) and C(key) (PEM): a self-signed ECDSA P-256
    certificate made for this move only, valid for one day, and its key."
  - Give the same dictionary to M(autopod.autopod.pod_receive) and M(autopod.autopod.pod_migrate) as their
    C(credentials) option.
    Both ends of every connection of the move present the certificate and accept only a peer that presents it, so the
    move's traffic is encrypted (TLS 1.3) and only the two hosts given these credentials can take part.
  - "It runs on the controller, with the C(cryptography) library ansible-core itself requires. Keep the result out of
    logs (C(no_log: true) on the task that stores it)."
options: {}
"""

EXAMPLES = r"""
- name: Make this move's credentials
  ansible.builtin.set_fact:
    move_credentials: "{{ lookup('autopod.autopod.move_credentials') }}"
  no_log: true
"""

RETURN = r"""
_raw:
  description: One dictionary with C(token), C(certificate) and C(key).
  type: list
  elements: dict
"""

import datetime
import secrets
from typing import Any, Dict, List

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
except ImportError:  # ansible-core requires cryptography; a controller without it gets a clear error
    x509 = None


def make_credentials() -> Dict[str, str]:
    """A one-time token and a fresh self-signed certificate and key, valid for a day."""
    if x509 is None:
        raise AnsibleLookupError("move_credentials needs the Python library cryptography on the controller")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "autopod move")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .sign(key, hashes.SHA256()))
    return {"token": secrets.token_hex(16),
            "certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
            "key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()}


class LookupModule(LookupBase):

    def run(self, terms: List[Any], variables: Any = None, **kwargs: Any) -> List[Dict[str, str]]:
        return [make_credentials()]
