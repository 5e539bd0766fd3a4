# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options every pod module takes.
    DOCUMENTATION = r"""
options:
  state_dir:
    description:
      - Directory where AutoPod keeps pod manifests, supervisor logs and default checkpoint images on the managed host.
      - Created with mode C(0700) when needed.
    type: path
    default: /var/lib/autopod
requirements:
  - Linux, run as root.
  - pyroute2 on the managed host.
"""

    # The input of the filters that answer questions from a read of the fleet.
    FLEET_READ = r"""
options:
  _input:
    description: The results of M(autopod.autopod.pod_info) registered in a loop over the hosts (V(item) is the host).
    type: list
    elements: dict
    required: true
"""

    CRIU = r"""
options:
  criu_path:
    description:
      - The criu binary to run, as a path or a name looked up in C(PATH), C(/usr/local/sbin), C(/usr/sbin) and C(/sbin).
      - Its version is checked against the running kernel before anything is done
        (kernels from 6.13 need CRIU 4.1; kernels from 6.16 with TCP connections need CRIU 4.2).
    type: path
    default: criu
"""

    # What every module's attributes mean; each module says how far it supports them.
    MOVE = r"""
options:
  credentials:
    description:
      - The move's credentials, made on the controller by C(lookup('autopod.autopod.move_credentials')) and given to
        both M(autopod.autopod.pod_receive) and M(autopod.autopod.pod_migrate). They are never returned or logged.
      - With O(encryption=tls), every connection of the move is TLS 1.3 and each side accepts only a peer that presents
        the move's certificate, so only the two hosts holding these credentials can take part, and the pod's memory,
        files and messages are encrypted on the wire. The token is then checked inside the encrypted channel.
    type: dict
    required: true
    suboptions:
      token:
        description: A one-time secret; every connection of the move presents it.
        type: str
        required: true
      certificate:
        description: The move's self-signed certificate (PEM). Required with O(encryption=tls).
        type: str
      key:
        description: The certificate's private key (PEM). Required with O(encryption=tls).
        type: str
  encryption:
    description:
      - V(tls), everything between the hosts is encrypted and mutually authenticated (TLS 1.3).
      - V(none), clear text, authenticated by the token only; for a network you trust, or a benchmark's baseline.
      - Both ends of a move must use the same setting.
    type: str
    choices: [tls, none]
    default: tls
"""

    ATTRIBUTES = r"""
attributes:
  check_mode:
    description: Can run in check mode and predict what would change, without changing anything.
  diff_mode:
    description: Returns the state before and after in diff mode.
  idempotent:
    description: A second identical run reports no change.
  platform:
    description: Target operating systems.
    support: full
    platforms: linux
"""
