"""The filter autopod.autopod.pods_away: a host's pods that run elsewhere (plugin_utils/fleet.py)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.autopod.autopod.plugins.plugin_utils.fleet import pods_away as _pods_away

DOCUMENTATION = r"""
name: pods_away
short_description: The running pods whose home is a host and which run elsewhere
version_added: 0.2.0
description:
  - Reads where every pod runs from one read of the fleet; P(autopod.autopod.after_moves#filter) first brings a read
    up to date with the moves made since, so that a batch asks every host once rather than once per question.
  - A pod that never moved belongs on the host it runs on. A host whose read failed holds nothing.
positional: home
extends_documentation_fragment:
  - autopod.autopod.common.fleet_read
options:
  home:
    description: The host whose pods are looked for.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Find this host's pods on the peers, from the batch's read and its moves
  ansible.builtin.set_fact:
    away: "{{ fleet.results | autopod.autopod.after_moves(pod_evacuate_moves) | autopod.autopod.pods_away(inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: One V(name) and V(host) (where it runs) per pod, by name.
  type: list
  elements: dict
"""


def pods_away(read: List[Mapping[str, Any]], home: str) -> List[Dict[str, str]]:
    try:
        return _pods_away(read, home)
    except (AttributeError, KeyError, TypeError) as exc:
        raise AnsibleFilterError("pods_away: expected pod_info results registered in a loop over hosts: %s" % exc)


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"pods_away": pods_away}
