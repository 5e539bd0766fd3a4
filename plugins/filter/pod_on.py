"""The filter autopod.autopod.pod_on: one pod on one host, from a read of the fleet (plugin_utils/fleet.py)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.autopod.autopod.plugins.plugin_utils.fleet import pod_on as _pod_on

DOCUMENTATION = r"""
name: pod_on
short_description: What pod_info would say of one pod on one host, from a read of the fleet
version_added: 0.2.0
description:
  - For a dry run, which changes nothing, so that a read taken earlier in the run is still true.
  - Fails when the read has no answer from the host.
positional: read, name
options:
  _input:
    description: The host.
    type: str
    required: true
  read:
    description: The results of M(autopod.autopod.pod_info) registered in a loop over the hosts (V(item) is the host).
    type: list
    elements: dict
    required: true
  name:
    description: The pod.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: The pod on its source and on its destination, as the fleet read saw them
  ansible.builtin.set_fact:
    found: "{{ ['web1', 'web2'] | map('autopod.autopod.pod_on', fleet.results, 'web') | list }}"
"""

RETURN = r"""
_value:
  description: V(item), the host, and V(pods), the pod's entry as M(autopod.autopod.pod_info) gave it (empty when it
    is not there).
  type: dict
"""


def pod_on(host: str, read: List[Mapping[str, Any]], name: str) -> Dict[str, Any]:
    try:
        return _pod_on(host, read, name)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("pod_on: %s" % exc)


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"pod_on": pod_on}
