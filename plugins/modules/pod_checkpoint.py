#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pod_checkpoint
short_description: Checkpoint a running pod with CRIU
version_added: 0.1.0
description:
  - Dumps the pod's process tree, memory, open files and (by default) established TCP connections into an image
    directory with CRIU. The image also records the pod's definition, so M(autopod.autopod.pod_restore) can rebuild
    the pod on this host or on another.
  - The image is written to a fresh directory and moved into place only when complete; a failed checkpoint leaves the
    pod running as it was and any earlier image untouched.
  - Images hold the pod's memory, so directories are created C(0700) and files C(0600).
  - With O(leave_running=false) a second identical call finds the pod checkpointed and reports no change. With
    O(leave_running=true) every call takes a new checkpoint and reports a change.
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
    support: partial
    details: A checkpoint with O(leave_running=true) is an action, taken again on every run.
options:
  name:
    description: The pod to checkpoint. It must be running.
    type: str
    required: true
  image_dir:
    description:
      - Directory for the image, outside the pod's rootfs. A tmpfs directory makes checkpoints fastest.
      - Defaults to the pod's last image directory, else C(<state_dir>/images/<name>).
    type: path
  leave_running:
    description:
      - Keep the pod running after the checkpoint. When false, the pod stops and its network identity (namespace,
        veth, address) is released, ready to be restored here or elsewhere.
    type: bool
    default: false
  tcp_established:
    description: Checkpoint established TCP connections, so they continue after restore.
    type: bool
    default: true
seealso:
  - module: autopod.autopod.pod_restore
author:
  - AutoPod team (@autopod)
"""

EXAMPLES = r"""
- name: Checkpoint the web pod into tmpfs and stop it
  autopod.autopod.pod_checkpoint:
    name: web
    image_dir: /run/autopod/images/web
  register: ckpt

- name: Snapshot a pod that keeps running
  autopod.autopod.pod_checkpoint:
    name: web
    leave_running: true
    criu_path: /usr/local/sbin/criu
"""

RETURN = r"""
image_dir:
  description: Where the image is.
  returned: always
  type: str
  sample: /var/lib/autopod/images/web
image_size:
  description: Size of the image in bytes.
  returned: always
  type: int
  sample: 17301504
stats:
  description: CRIU's own statistics from its stats-dump image (times in microseconds).
  returned: changed
  type: dict
  sample: {frozen_time_us: 61234, memdump_time_us: 10233, memwrite_time_us: 8012, pages_written: 4200}
timings:
  description: Wall time of the module's work in milliseconds.
  returned: changed
  type: dict
  sample: {total_ms: 120}
criu:
  description: The CRIU used and the kernel it ran on.
  returned: always
  type: dict
  sample: {path: /usr/local/sbin/criu, version: 4.2.1, kernel: 6.18.44}
pod:
  description: The pod after the checkpoint, as M(autopod.autopod.pod_info) reports it.
  returned: always
  type: dict
  sample: {name: web, state: checkpointed}
actions:
  description: What was done.
  returned: always
  type: list
  elements: str
  sample: ["checkpointed pod web into /var/lib/autopod/images/web"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.autopod.autopod.plugins.module_utils.common_args import CRIU_ARGS, STATE_DIR_ARGS
from ansible_collections.autopod.autopod.plugins.module_utils.checkpointing import Checkpointer
from ansible_collections.autopod.autopod.plugins.module_utils.module_runner import run_module

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    image_dir=dict(type="path"),
    leave_running=dict(type="bool", default=False),
    tcp_established=dict(type="bool", default=True),
    **CRIU_ARGS,
    **STATE_DIR_ARGS,
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    checkpointer = Checkpointer(p["state_dir"], p["criu_path"], module.check_mode)
    run_module(module, lambda: checkpointer.checkpoint(p["name"], p["image_dir"], p["leave_running"],
                                                       p["tcp_established"]))


if __name__ == "__main__":
    main()
