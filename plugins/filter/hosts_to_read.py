"""The filter autopod.autopod.hosts_to_read: which hosts a kept read of the fleet no longer speaks for
(plugin_utils/fleet.py)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.autopod.autopod.plugins.plugin_utils.fleet import hosts_to_read as _hosts_to_read

DOCUMENTATION = r"""
name: hosts_to_read
short_description: The hosts a read of the fleet no longer speaks for
version_added: 0.2.0
description:
  - A rolling patch keeps one read of the fleet for the whole run and, before each batch, reads again only the
    hosts this filter names, rather than every host in every batch.
  - Named are the hosts the read has no answer from, the hosts a move touched (as its source or destination,
    whatever its outcome) after the read was taken, and O(always) (a batch's own hosts, whose pods are about to
    leave). A dry run's planned moves touch nothing. With no read, every host is named.
positional: hosts, moves, read_at, always
extends_documentation_fragment:
  - autopod.autopod.common.fleet_read
options:
  hosts:
    description: The hosts the batch needs figures for, in the order they are to be read.
    type: list
    elements: str
    required: true
  moves:
    description: The run's move records (the roles' C(pod_evacuate_moves) and C(pod_return_moves)), each with C(from),
      C(to), C(at) (ISO 8601) and C(result).
    type: list
    elements: dict
    default: []
  read_at:
    description: When the read was taken (ISO 8601). Empty, every move counts.
    type: str
    default: ""
  always:
    description: Hosts to read again whatever the read says.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Read again only the hosts a move touched since the kept read, and the batch
  autopod.autopod.pod_info:
  delegate_to: "{{ item }}"
  loop: "{{ kept_read | autopod.autopod.hosts_to_read(ansible_play_hosts_all, moves, kept_read_at, ansible_play_batch) }}"
  register: fresh
"""

RETURN = r"""
_value:
  description: The hosts to read again, in the order of O(hosts).
  type: list
  elements: str
"""


def hosts_to_read(read: List[Mapping[str, Any]], hosts: Sequence[str], moves: Sequence[Mapping[str, Any]] = (),
                  read_at: str = "", always: Sequence[str] = ()) -> List[str]:
    try:
        return _hosts_to_read(read, hosts, moves, read_at, always)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("hosts_to_read: expected pod_info results and move records with an ISO 8601 'at': %s"
                                 % exc)


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"hosts_to_read": hosts_to_read}
