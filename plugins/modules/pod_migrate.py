#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pod_migrate
short_description: Move a running pod live to another host
version_added: 0.1.0
description:
  - The second half of a live migration, run on the source after M(autopod.autopod.pod_receive) ran on the
    destination. The pod keeps its processes, memory, IP and MAC address, established TCP connections and files.
  - Strategies. V(post-copy) freezes the pod only for the non-memory state, resumes it on the destination at once,
    and serves its memory from here on demand until the destination has all of it; this host must stay up until the
    module returns (it returns only then). V(pre-copy) sends the memory while the pod runs, in rounds (CRIU
    C(pre-dump --track-mem); the first round sends everything, the next only what was written since), then
    freezes the pod and sends what is still dirty; it needs soft-dirty page tracking in this host's kernel
    (C(criu check --feature mem_dirty_track)). V(stop-and-copy) streams the memory to the destination while the pod
    is frozen. V(auto) picks post-copy where both hosts can do it (userfaultfd, and C(/proc/sys/fs/pipe-max-size)
    large enough for CRIU's page server), else pre-copy where this kernel tracks dirty pages, else stop-and-copy.
  - Before the freeze, CRIU is checked, the destination checks memory, disk and CPU features; a refusal leaves the pod
    running here. If the destination cannot restore the pod, it is restored here from the same images and the task
    fails saying what happened. After a successful move the pod is forgotten here and its images are removed; with
    O(storage=copy) its rootfs stays here, so a later move back sends only what changed.
attributes:
  check_mode:
    support: none
  diff_mode:
    support: none
  idempotent:
    support: none
    details: A move is an action; the receiver accepts only one.
extends_documentation_fragment:
  - autopod.autopod.common.ATTRIBUTES
  - autopod.autopod.common
  - autopod.autopod.common.CRIU
options:
  name:
    description: The running pod to move.
    type: str
    required: true
  destination:
    description: The address the destination's receiver listens on (RV(autopod.autopod.pod_receive#module:address)).
    type: str
    required: true
  port:
    description: The receiver's port.
    type: int
    required: true
  token:
    description: The receiver's one-time token.
    type: str
    required: true
  storage:
    description: V(copy) or V(shared), as given to M(autopod.autopod.pod_receive).
    type: str
    choices: [copy, shared]
    default: copy
  strategy:
    description: How the memory travels.
    type: str
    choices: [auto, post-copy, pre-copy, stop-and-copy]
    default: auto
  source_address:
    description: This host's address the destination fetches post-copied memory from. Defaults to the address the
      connection to the destination left from.
    type: str
  image_dir:
    description: Where this host writes the pod's images (a tmpfs directory is fastest). Defaults to
      C(<state_dir>/outgoing/<name>).
    type: path
author:
  - AutoPod team (@autopod)
"""

EXAMPLES = r"""
- name: Move pod web to the host that prepared for it
  autopod.autopod.pod_migrate:
    name: web
    destination: "{{ receiver.address }}"
    port: "{{ receiver.port }}"
    token: "{{ receiver.token }}"
  register: moved
"""

RETURN = r"""
strategy:
  description: The strategy used.
  returned: changed
  type: str
  sample: post-copy
downtime_ms:
  description: From the start of the freeze until the destination reported the pod restored, measured here.
  returned: changed
  type: float
  sample: 143.2
frozen_ms:
  description: CRIU's frozen time from its dump statistics.
  returned: changed
  type: float
  sample: 61.0
pre_copy_pages:
  description: Pages sent by each pre-copy round while the pod ran (empty for other strategies).
  returned: changed
  type: list
  elements: int
  sample: [4200, 12]
final_dump_pages:
  description: Pages sent while the pod was frozen (0 for post-copy, whose pages follow the pod).
  returned: changed
  type: int
  sample: 9
bytes:
  description: Bytes moved between the hosts, by kind (rootfs, images, pages, channel, total).
  returned: changed
  type: dict
  sample: {"rootfs": 0, "images": 120000, "pages": 16777216, "channel": 125000, "total": 16902216}
timings:
  description: Phases of the move in milliseconds.
  returned: changed
  type: dict
  sample: {"prepare_ms": 80.0, "dump_ms": 70.0, "images_ms": 3.0, "restore_remote_ms": 90.0, "total_ms": 400.0}
destination_report:
  description: What the destination reported (its PID for the pod, CRIU restore statistics, timings).
  returned: changed
  type: dict
  sample: {"init_pid": 812, "stats": {"restore_time_us": 52000}}
actions:
  description: What was done.
  returned: changed
  type: list
  elements: str
  sample: ["moved pod web to 10.220.0.12 (post-copy, copy storage)"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.autopod.autopod.plugins.module_utils.migration import STORAGE, STRATEGIES, migrate
from ansible_collections.autopod.autopod.plugins.module_utils.module_runner import run_module

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    destination=dict(type="str", required=True),
    port=dict(type="int", required=True),
    token=dict(type="str", required=True, no_log=True),
    storage=dict(type="str", choices=list(STORAGE), default="copy"),
    strategy=dict(type="str", choices=list(STRATEGIES), default="auto"),
    source_address=dict(type="str"),
    image_dir=dict(type="path"),
    criu_path=dict(type="path", default="criu"),
    state_dir=dict(type="path", default="/var/lib/autopod"),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=False)
    p = module.params
    run_module(module, lambda: migrate(p["state_dir"], p["criu_path"], p["name"], p["destination"], p["port"],
                                       p["token"], p["storage"], p["strategy"], p["image_dir"], p["source_address"]))


if __name__ == "__main__":
    main()
