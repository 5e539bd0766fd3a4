"""The filter autopod.autopod.after_moves: a read of the fleet brought up to date by the moves made since
(plugin_utils/fleet.py)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.autopod.autopod.plugins.plugin_utils.fleet import after_moves as _after_moves

DOCUMENTATION = r"""
name: after_moves
short_description: A read of the fleet as it would be if taken after the moves made since
version_added: 0.2.0
description:
  - Puts each running pod the moves moved on the host its last move's C(runs_on) names, with its home (the host
    it was created on, unless the read already said another), as M(autopod.autopod.pod_receive) records it there.
  - Stopped pods stay where the read saw them. A pod moved to a host the read has no answer from is in no answer.
  - For the role autopod.autopod.pod_return, which finds the pods away from it (P(autopod.autopod.pods_away#filter)) and
    plans the moves back from it instead of reading each peer again.
positional: moves
extends_documentation_fragment:
  - autopod.autopod.common.fleet_read
options:
  moves:
    description: The move records made since the read (the roles' C(pod_evacuate_moves)), in order.
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: The batch's read as it is after the batch's moves away
  ansible.builtin.set_fact:
    now_read: "{{ fleet.results | autopod.autopod.after_moves(pod_evacuate_moves) }}"
"""

RETURN = r"""
_value:
  description: The read, one result per host as in the input, with C(pods) as they are after the moves.
  type: list
  elements: dict
"""


def after_moves(read: List[Mapping[str, Any]], moves: Sequence[Mapping[str, Any]] = ()) -> List[Dict[str, Any]]:
    try:
        return _after_moves(read, moves)
    except (AttributeError, KeyError, TypeError) as exc:
        raise AnsibleFilterError("after_moves: expected pod_info results registered in a loop over hosts: %s" % exc)


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"after_moves": after_moves}
