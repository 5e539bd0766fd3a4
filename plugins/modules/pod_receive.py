#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pod_receive
short_description: Prepare a host to receive a pod that moves live from another host
version_added: 0.1.0
description:
  - The first half of a live migration, run on the destination. It checks that this host can take the pod
    (C(criu check) and CRIU against the kernel, the pod's bridge present and its address free here, its bind-mount
    sources present, its rootfs present for O(storage=shared) or its parent for O(storage=copy)), builds the pod's
    network identity with its veth kept down, and leaves a receiver listening for this one migration.
  - Memory, disk and CPU features (C(criu cpuinfo check)) are checked when the source connects, before the pod is
    frozen. A refusal at any of these points leaves the pod running on its source.
  - "Pass the returned RV(port), and the same O(credentials), to M(autopod.autopod.pod_migrate) on the source. The
    credentials are made on the controller for each move (the C(autopod.autopod.pod_move) role does it) and are never
    returned. The receiver keeps accepting connections until one completes the TLS handshake with them and presents
    the token, so stray connections, port scans and wrong credentials cannot stop the move. It restores the pod when
    it arrives, holds it until the source lets it go, stays until a post-copied pod has all its memory, then removes
    the images. It gives up after O(timeout) seconds
    without a source, and then removes only what it made itself."
  - "The pod's name is claimed here (C(pod_info) shows it C(incoming)); a rerun supersedes an earlier receiver for
    the same pod. O(definition) is validated as M(autopod.autopod.pod_create) validates its options. With
    O(storage=copy) the rootfs path must be missing, empty, or an earlier copy of this same pod."
  - The role C(autopod.autopod.pod_move) and C(playbooks/move_pod.yml) combine both halves.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every call prepares a new migration.
extends_documentation_fragment:
  - autopod.autopod.common.ATTRIBUTES
  - autopod.autopod.common
  - autopod.autopod.common.CRIU
  - autopod.autopod.common.MOVE
options:
  definition:
    description: The pod's definition, as M(autopod.autopod.pod_info) returns it on the source (its C(definition)).
    type: dict
    required: true
  storage:
    description:
      - V(copy), the rootfs travels with the pod (a first pass while it runs, the changes while it is frozen).
      - V(shared), the rootfs is on storage mounted at the same path on both hosts; only the images travel.
    type: str
    choices: [copy, shared]
    default: copy
  listen:
    description: The address of this host the source connects to.
    type: str
    required: true
  port:
    description: TCP port to listen on; 0 picks a free one.
    type: int
    default: 0
  image_dir:
    description: Where the incoming images go (a tmpfs directory is fastest). Defaults to C(<state_dir>/incoming/<name>).
    type: path
  home:
    description: The pod's home host, recorded so it can be returned there later.
    type: str
  timeout:
    description: Seconds to wait for the source to connect.
    type: int
    default: 300
author:
  - AutoPod team (@autopod)
"""

EXAMPLES = r"""
- name: Get ready for pod web
  autopod.autopod.pod_receive:
    definition: "{{ source_info.pods[0].definition }}"
    listen: "{{ ansible_host }}"
    credentials: "{{ move_credentials }}"
    image_dir: /run/autopod/incoming/web
  register: receiver
"""

RETURN = r"""
port:
  description: The port the receiver listens on.
  returned: changed
  type: int
  sample: 40213
address:
  description: The address the receiver listens on.
  returned: changed
  type: str
  sample: 10.220.0.12
post_copy:
  description: Whether this host can restore a pod whose memory follows it (post-copy).
  returned: always
  type: bool
  sample: true
checks:
  description: What was checked, with CRIU's version and the memory available.
  returned: always
  type: dict
  sample: {"criu": {"version": "4.2.1"}, "post_copy": true, "memory_available": 23000000000}
image_dir:
  description: Where the images will arrive.
  returned: always
  type: str
  sample: /run/autopod/incoming/web
receiver_pid:
  description: PID of the receiver daemon.
  returned: changed
  type: int
  sample: 5123
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.autopod.autopod.plugins.module_utils.common_args import CRIU_ARGS, MOVE_ARGS, STATE_DIR_ARGS
from ansible_collections.autopod.autopod.plugins.module_utils.migration.protocol import STORAGE
from ansible_collections.autopod.autopod.plugins.module_utils.migration.receiver import prepare
from ansible_collections.autopod.autopod.plugins.module_utils.migration.requests import ReceiveRequest
from ansible_collections.autopod.autopod.plugins.module_utils.module_runner import run_module

ARGUMENT_SPEC = dict(
    definition=dict(type="dict", required=True),
    storage=dict(type="str", choices=list(STORAGE), default="copy"),
    listen=dict(type="str", required=True),
    port=dict(type="int", default=0),
    image_dir=dict(type="path"),
    home=dict(type="str"),
    timeout=dict(type="int", default=300),
    **CRIU_ARGS,
    **STATE_DIR_ARGS,
    **MOVE_ARGS,
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, lambda: prepare(ReceiveRequest.from_params(module.params), module.check_mode))


if __name__ == "__main__":
    main()
