#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pod_info
short_description: Report the pods on a host
version_added: 0.1.0
description:
  - Lists all pods on the managed host, or one of them, with their state as the host is now
    (a pod whose process has ended, or whose host rebooted, is reported V(stopped)).
  - Read-only.
extends_documentation_fragment:
  - autopod.autopod.common.ATTRIBUTES
  - autopod.autopod.common
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  name:
    description: Report only this pod. An unknown name gives an empty list.
    type: str
  disk_usage:
    description:
      - Also report what each running pod's root filesystem takes on disk (RV(pods[].disk_usage)), by walking it;
        peer placement counts it against a peer's free disk when root filesystems are copied.
    type: bool
    default: false
seealso:
  - module: autopod.autopod.pod_create
author:
  - AutoPod team (@autopod)
"""

EXAMPLES = r"""
- name: All pods on the host
  autopod.autopod.pod_info:
  register: pods

- name: One pod
  autopod.autopod.pod_info:
    name: web
  register: web
"""

RETURN = r"""
host:
  description: What this host has free, as peer placement (P(autopod.autopod.place_pods#filter)) counts it.
  returned: always
  type: dict
  contains:
    memory_available:
      description:
        - Bytes of memory new pods could take here - the kernel's MemAvailable, or less when the pods' parent
          cgroup (C(autopod)) has a memory limit (C(memory.max)), the room left under it. An operator caps pods
          that way to keep memory for the host's own services.
      type: int
      sample: 8375984128
    disk_available:
      description: Bytes free on the filesystem of O(state_dir).
      type: int
      sample: 51883204608
    cpu_flags:
      description: The CPU's feature flags (/proc/cpuinfo); a pod dumped here restores only where all of them exist.
      type: list
      elements: str
      sample: [fpu, sse2, avx2]
pods:
  description: The pods, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Pod name.
      type: str
      returned: always
      sample: web
    state:
      description:
        - One of V(running), V(stopped), V(checkpointed); V(moved) for a pod that moved to another host (a tombstone
          that keeps it from starting here again), V(incoming) while a receiver waits for it, V(incomplete) for a
          move to this host that never finished.
      type: str
      returned: always
      sample: running
    definition:
      description: The pod's definition as validated (the options of M(autopod.autopod.pod_create)); what
        M(autopod.autopod.pod_receive) takes to receive it elsewhere.
      type: dict
      returned: always
      sample: {"name": "web", "rootfs": "/srv/pods/web", "command": ["/usr/sbin/nginx"], "user": null}
    home:
      description: The host the pod belongs on, recorded by a move (null for a pod that never moved).
      type: str
      returned: always
      sample: web1
    generation:
      description: How many times the pod was started, restored or received here; a stale copy has a lower one.
      type: int
      returned: always
      sample: 3
    moved_to:
      description: For V(moved), the host the pod moved to.
      type: str
      returned: always
      sample: web2
    moving:
      description: What move is under way for the pod here, if any (a receiver waiting, a move leaving).
      type: str
      returned: always
      sample: null
    rootfs:
      description: The pod's root filesystem.
      type: str
      returned: always
      sample: /srv/pods/web
    bridge:
      description: The host bridge its veth joins; null for a pod without network.
      type: str
      returned: always
      sample: br0
    supervisor_pid:
      description: PID of the pod's supervisor, when it runs.
      type: int
      returned: always
      sample: 4241
    console_log:
      description: The file (on the host) that holds the pod's standard output and error.
      type: str
      returned: always
      sample: /srv/pods/web/.autopod/console.log
    init_pid:
      description: Host PID of the pod's first process, when it runs; null otherwise.
      type: int
      returned: always
      sample: 4242
    address:
      description: Address in CIDR form; null for a pod without network.
      type: str
      returned: always
      sample: 10.20.0.10/24
    mac:
      description: MAC address.
      type: str
      returned: always
      sample: "02:9f:86:d0:81:88"
    resident_memory:
      description: Resident memory of the pod's processes in bytes, when it runs.
      type: int
      returned: always
      sample: 16842752
    disk_usage:
      description: Bytes its root filesystem takes on disk, for a running pod when O(disk_usage) is set.
      type: int
      returned: when O(disk_usage) is set and the pod runs
      sample: 241172480
    uptime:
      description: Seconds since the pod was started or restored, when it runs.
      type: float
      returned: always
      sample: 12.5
    image_dir:
      description: Where its checkpoint image is, when it is checkpointed.
      type: str
      returned: always
      sample: /var/lib/autopod/images/web
    last_exit:
      description: How the current incarnation's first process ended, if it has ended.
      type: dict
      returned: always
      sample: {"exit_code": 0, "ended_at": 1764100000.0}
    last_checkpoint:
      description: The last checkpoint taken, with its image directory, time and size.
      type: dict
      returned: always
      sample: {"image_dir": "/var/lib/autopod/images/web", "image_size": 16998400}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.autopod.autopod.plugins.module_utils.common_args import STATE_DIR_ARGS
from ansible_collections.autopod.autopod.plugins.module_utils.module_runner import run_module
from ansible_collections.autopod.autopod.plugins.module_utils.pods import Pods

ARGUMENT_SPEC = dict(
    name=dict(type="str"),
    disk_usage=dict(type="bool", default=False),
    **STATE_DIR_ARGS,
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    pods = Pods(module.params["state_dir"], module.check_mode)
    run_module(module, lambda: pods.report(module.params["name"], module.params["disk_usage"]))


if __name__ == "__main__":
    main()
