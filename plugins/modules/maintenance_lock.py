#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: maintenance_lock
short_description: Take, renew, read or release a host's maintenance lock
version_added: 0.1.0
description:
  - A lock kept on the managed host (C(<state_dir>/maintenance.json)) that says which run is working on it, since
    when, in which phase, and until when the claim holds. A rolling patch takes it before it touches a host and
    releases it when done, so two runs never work on the same host.
  - The lock lives on the host, not on the controller, so it survives the controller (AWX execution environments
    keep nothing between jobs). A lock whose run died expires after O(ttl) seconds.
  - Taking a lock held by another, unexpired owner waits up to O(wait) seconds, then fails naming the holder.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
extends_documentation_fragment:
  - autopod.autopod.common.ATTRIBUTES
  - autopod.autopod.common
options:
  state:
    description: V(acquired) takes or renews the lock, V(released) gives it back, V(read) only reports it.
    type: str
    choices: [acquired, released, read]
    default: acquired
  owner:
    description: Who takes or releases the lock, for example the AWX job or the controller and its run. Required
      unless O(state=read).
    type: str
  phase:
    description: What the owner is doing, recorded for a later run or a human.
    type: str
    default: maintenance
  ttl:
    description: Seconds the lock holds without being renewed.
    type: int
    default: 7200
  wait:
    description: Seconds to wait for a lock held by another owner before failing.
    type: int
    default: 0
  force:
    description: Take over or release a lock held by another owner. Only when that run is known to be dead.
    type: bool
    default: false
author:
  - AutoPod team (@autopod)
"""

EXAMPLES = r"""
- name: Take this host for the rolling patch
  autopod.autopod.maintenance_lock:
    owner: "awx-job-{{ awx_job_id | default('manual') }}"
    phase: evacuating
    wait: 600

- name: Give it back
  autopod.autopod.maintenance_lock:
    owner: "awx-job-{{ awx_job_id | default('manual') }}"
    state: released
"""

RETURN = r"""
lock:
  description: The lock as it is now (null when released or absent).
  returned: always
  type: dict
  sample: {"owner": "awx-job-42", "phase": "patching", "acquired_at": 1764100000.0, "expires_at": 1764107200.0}
held:
  description: With O(state=read), whether an unexpired lock is held.
  returned: when state is read
  type: bool
  sample: true
taken_over:
  description: Whether an unexpired lock of another owner was taken over with O(force).
  returned: when state is acquired
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.autopod.autopod.plugins.module_utils.common_args import STATE_DIR_ARGS
from ansible_collections.autopod.autopod.plugins.module_utils.maintenance import MaintenanceLock
from ansible_collections.autopod.autopod.plugins.module_utils.module_runner import run_module

ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=["acquired", "released", "read"], default="acquired"),
    owner=dict(type="str"),
    phase=dict(type="str", default="maintenance"),
    ttl=dict(type="int", default=7200),
    wait=dict(type="int", default=0),
    force=dict(type="bool", default=False),
    **STATE_DIR_ARGS,
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("state", "acquired", ["owner"]), ("state", "released", ["owner"])])
    p = module.params
    lock = MaintenanceLock(p["state_dir"], module.check_mode)
    actions = {"acquired": lambda: lock.acquire(p["owner"], p["ttl"], p["phase"], p["wait"], p["force"]),
               "released": lambda: lock.release(p["owner"], p["force"]),
               "read": lock.read}
    run_module(module, actions[p["state"]])


if __name__ == "__main__":
    main()
