#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pod_restore
short_description: Restore a pod from a CRIU checkpoint image
version_added: 0.1.0
description:
  - Rebuilds the pod's network identity (namespace, veth on its bridge, IP and MAC address) from the definition stored
    in the image, restores its processes into it with CRIU, and announces the address with gratuitous ARP.
  - Works on the host that took the checkpoint and on any other host where the pod's rootfs, bind-mount sources and
    bridge exist at the same paths and names.
  - A restore that fails releases what it built and keeps the image, so it can be retried.
  - A pod that is already running is left alone and reported unchanged.
extends_documentation_fragment:
  - autopod.autopod.common.ATTRIBUTES
  - autopod.autopod.common
  - autopod.autopod.common.CRIU
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  name:
    description: The pod to restore; the image must hold this pod.
    type: str
    required: true
  image_dir:
    description: The image directory. Defaults to the pod's last image directory, else C(<state_dir>/images/<name>).
    type: path
  keep_image:
    description:
      - Keep the image after a successful restore. By default it is removed, since it holds process memory and is
        stale once the pod runs again.
    type: bool
    default: false
seealso:
  - module: autopod.autopod.pod_checkpoint
author:
  - AutoPod team (@autopod)
"""

EXAMPLES = r"""
- name: Bring the web pod back
  autopod.autopod.pod_restore:
    name: web

- name: Restore from an image copied from another host
  autopod.autopod.pod_restore:
    name: web
    image_dir: /run/autopod/incoming/web
    criu_path: /usr/local/sbin/criu
"""

RETURN = r"""
image_dir:
  description: The image restored from.
  returned: always
  type: str
  sample: /var/lib/autopod/images/web
image_removed:
  description: Whether the image was removed after the restore.
  returned: changed
  type: bool
  sample: true
stats:
  description: CRIU's own statistics from its stats-restore image (times in microseconds).
  returned: changed
  type: dict
  sample: {restore_time_us: 52100, forking_time_us: 1500, pages_restored: 4200}
timings:
  description: Wall times in milliseconds; C(restore_ms) covers network identity plus CRIU.
  returned: changed
  type: dict
  sample: {restore_ms: 80, total_ms: 95}
criu:
  description: The CRIU used and the kernel it ran on.
  returned: changed
  type: dict
  sample: {path: /usr/local/sbin/criu, version: 4.2.1, kernel: 6.18.44}
pod:
  description: The pod after the restore.
  returned: always
  type: dict
  sample: {name: web, state: running, init_pid: 4242}
actions:
  description: What was done.
  returned: always
  type: list
  elements: str
  sample: ["restore pod web from /var/lib/autopod/images/web"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.autopod.autopod.plugins.module_utils.common_args import CRIU_ARGS, STATE_DIR_ARGS
from ansible_collections.autopod.autopod.plugins.module_utils.checkpointing import Checkpointer
from ansible_collections.autopod.autopod.plugins.module_utils.module_runner import run_module

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    image_dir=dict(type="path"),
    keep_image=dict(type="bool", default=False),
    **CRIU_ARGS,
    **STATE_DIR_ARGS,
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    checkpointer = Checkpointer(p["state_dir"], p["criu_path"], module.check_mode)
    run_module(module, lambda: checkpointer.restore(p["name"], p["image_dir"], p["keep_image"]))


if __name__ == "__main__":
    main()
