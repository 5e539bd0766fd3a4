"""The filter autopod.autopod.move_plan: what a move would do, for a dry run (plugin_utils/move_plan.py)."""

from __future__ import annotations

from typing import Any, Dict

from ansible_collections.autopod.autopod.plugins.plugin_utils.move_plan import plan_move

DOCUMENTATION = r"""
name: move_plan
short_description: What a move would do, for a dry run
version_added: 0.2.0
description:
  - The strategy V(auto) would choose (post-copy where the destination can do it, else stop-and-copy; a dry run does
    not probe the source for pre-copy), the MiB that would cross (memory, and the root filesystem with copy storage)
    and the pause to expect, estimated from this project's measured rates (README.md).
positional: destination_post_copy, strategy, storage
options:
  _input:
    description: The pod, as M(autopod.autopod.pod_info) reports it on its source (with its O(autopod.autopod.pod_info#module:disk_usage)).
    type: dict
    required: true
  destination_post_copy:
    description: Whether the destination can take the pod by post-copy (M(autopod.autopod.pod_receive)'s RV(autopod.autopod.pod_receive#module:post_copy)).
    type: bool
    required: true
  strategy:
    description: The strategy asked for.
    type: str
    default: auto
  storage:
    description: How the root filesystem travels.
    type: str
    default: copy
"""

EXAMPLES = r"""
- name: Plan the move
  ansible.builtin.set_fact:
    plan: "{{ source_pod | autopod.autopod.move_plan(receiver.post_copy, 'auto', 'copy') }}"
"""

RETURN = r"""
_value:
  description: V(strategy), V(memory_mib), V(rootfs_mib), V(mib) (their sum) and V(expected_pause_ms).
  type: dict
"""


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"move_plan": plan_move}
