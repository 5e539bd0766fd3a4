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
  - "Everything between the hosts goes over connections to the receiver's port, each TLS 1.3 with the move's
    O(credentials) (unless O(encryption=none)) and opened with the move's token: the control conversation, the root
    filesystem and images as tar streams, and CRIU's pages, which AutoPod relays (CRIU itself never touches the
    network)."
  - "The pod is never lost and never runs twice: it is dumped with C(--leave-stopped), so a stopped copy stays here
    until the destination says the pod runs there (for post-copy: that every page has arrived). On any failure
    before that, the copy here is revived where it stopped: its network lock is removed, its TCP connections taken
    out of repair mode, its processes continued. The destination holds its restored copy before it resumes until
    this host says go, and kills it if anything fails. A result always says where the pod runs now (RV(runs_on))."
  - The pod stays frozen at most O(max_freeze) seconds; a destination that stops answering (packets dropped) is given
    up after that, and the pod resumes here. A failed post-copied pod whose memory had not all left this host when
    the destination went silent is revived here after the destination's own stall limit has passed, and the result
    says how long it had run there (RV(lost_ms)), time whose work is lost.
  - After a successful move the pod is forgotten here (its manifest becomes a tombstone, state C(moved), so this
    host never starts it from the old definition) and its images are removed; with O(storage=copy) its rootfs stays
    here, so a later move back sends only what changed.
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
  - autopod.autopod.common.MOVE
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
  max_freeze:
    description:
      - Seconds the pod may stay frozen, from the start of its dump until it runs on the destination. Past that the
        move is given up and the pod resumes here.
    type: int
    default: 30
  max_pause_ms:
    description:
      - A pause budget, as QEMU's downtime limit is for virtual machines. Each strategy's pause is estimated from the
        pod's resident memory with the model this project measured (README.md, "Pause budget"); with O(strategy=auto)
        the best strategy that fits is chosen, and an explicit strategy that does not fit is refused.
      - Pre-copy is judged after each of its rounds instead, from the rate the pod dirties its memory (measured by the
        rounds). Rounds go on until the last one is expected to fit the budget, at most 6. A pod that writes too fast
        for that is never frozen, and the move fails with the pod running here.
      - When no strategy fits, the move does not start; the pod keeps running here and the result says why.
      - The budget also bounds O(max_freeze), so a pod frozen past it resumes here.
    type: int
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
    credentials: "{{ move_credentials }}"
  register: moved
"""

RETURN = r"""
result:
  description:
    - V(moved), or for a failed task V(not_moved) (nothing changed, the pod runs here), V(rolled_back) (it had run on
      the destination and runs here again from the moment of its freeze) or V(unconfirmed) (it was handed to the
      destination, which did not confirm; the copy here is gone).
  returned: always
  type: str
  sample: moved
runs_on:
  description: Where the pod runs now, V(source) or V(destination) (V(unknown) only if it was not running here at all).
  returned: always
  type: str
  sample: destination
strategy:
  description: The strategy used.
  returned: when the move started
  type: str
  sample: post-copy
downtime_ms:
  description: From the start of the freeze until the destination reported the pod running, measured here.
  returned: success
  type: float
  sample: 143.2
frozen_ms:
  description: The same as RV(downtime_ms).
  returned: success
  type: float
  sample: 143.2
criu_frozen_ms:
  description: CRIU's frozen time from its dump statistics (the dump alone).
  returned: success
  type: float
  sample: 61.0
lost_ms:
  description: For RV(result=rolled_back), how long the pod ran on the destination before it was rolled back.
  returned: failure
  type: int
  sample: 2400
pre_copy_pages:
  description: Pages sent by each pre-copy round while the pod ran (empty for other strategies).
  returned: when the move started
  type: list
  elements: int
  sample: [4200, 12]
pre_copy_judged:
  description:
    - Pre-copy's last verdict (empty for other strategies), from the rate its rounds measured; with O(max_pause_ms)
      the rounds went on until RV(pre_copy_judged.expected_pause_ms) fitted it.
  returned: when the move started
  type: dict
  contains:
    expected_pause_ms:
      description: The pause the freeze was expected to cost when the rounds ended.
      type: int
    dirty_mib_s:
      description: How fast the pod wrote its memory while the rounds ran, in MiB/s.
      type: float
  sample: {"expected_pause_ms": 160, "dirty_mib_s": 2.5}
final_dump_pages:
  description: Pages sent while the pod was frozen (0 for post-copy, whose pages follow the pod).
  returned: success
  type: int
  sample: 9
bytes:
  description: Bytes moved between the hosts, by kind (rootfs, images, pages, channel, total); V(pages) counts
    every pre-copy round's and the last dump's.
  returned: success
  type: dict
  sample: {"rootfs": 0, "images": 120000, "pages": 16777216, "channel": 125000, "total": 16902216}
timings:
  description: Phases of the move in milliseconds, the frozen ones between C(dump_ms) and C(resume_remote_ms).
  returned: when the move started
  type: dict
  sample: {"cpu_check_ms": 30.0, "dump_ms": 70.0, "images_ms": 3.0, "restore_remote_ms": 90.0, "total_ms": 400.0}
frozen_phases_ms:
  description:
    - Where the frozen time went, in milliseconds; the phases add up to RV(frozen_ms).
    - V(dump) freezing and dumping the tasks; V(rootfs_delta) the rootfs's second pass (copy storage); V(pages) the
      memory sent while frozen (0 for post-copy, whose pages follow the pod); V(images) the rest of the image;
      V(restore) the destination's restore up to its hold; V(network) putting the pod on its bridge and probing its
      connections' windows; V(resume) the rest of the hand-over (the GO round trip and the resume).
  returned: success
  type: dict
  sample: {"dump": 55.0, "rootfs_delta": 12.0, "pages": 0, "images": 9.0, "restore": 62.0, "network": 2.1, "resume": 18.0}
destination_report:
  description: What the destination reported (its PID for the pod, CRIU restore statistics, timings).
  returned: success
  type: dict
  sample: {"init_pid": 812, "stats": {"restore_time_us": 52000}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.autopod.autopod.plugins.module_utils.common_args import CRIU_ARGS, MOVE_ARGS, STATE_DIR_ARGS
from ansible_collections.autopod.autopod.plugins.module_utils.migration.protocol import STORAGE, STRATEGIES
from ansible_collections.autopod.autopod.plugins.module_utils.migration.requests import MoveRequest
from ansible_collections.autopod.autopod.plugins.module_utils.migration.source import migrate
from ansible_collections.autopod.autopod.plugins.module_utils.module_runner import run_module

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    destination=dict(type="str", required=True),
    port=dict(type="int", required=True),
    storage=dict(type="str", choices=list(STORAGE), default="copy"),
    strategy=dict(type="str", choices=list(STRATEGIES), default="auto"),
    image_dir=dict(type="path"),
    max_freeze=dict(type="int", default=30),
    max_pause_ms=dict(type="int"),
    **CRIU_ARGS,
    **STATE_DIR_ARGS,
    **MOVE_ARGS,
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=False)
    run_module(module, lambda: migrate(MoveRequest.from_params(module.params)))


if __name__ == "__main__":
    main()
