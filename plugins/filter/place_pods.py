"""The filter autopod.autopod.place_pods: the plan of which peer takes which pod (plugin_utils/placement.py)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.autopod.autopod.plugins.plugin_utils.placement import Pod, host_from_facts, place

DOCUMENTATION = r"""
name: place_pods
short_description: Plan which peer takes each pod while a batch of hosts is patched
version_added: 0.1.0
description:
  - Never a host of the batch (nor an excluded one); only peers whose CPU features include the pod's host's and
    whose CRIU is at least as new; never more memory or disk than a peer has free, counting every pod planned
    for it; the peer with the most memory left first, the biggest pods placed first.
  - Each pod gets its placement followed by up to two other peers that also fit it, where it is offered if the
    first refuses.
positional: hosts, batch
options:
  _input:
    description: The pods to place, each a dict with V(name), V(host), V(memory) (bytes) and optionally V(disk) (bytes).
    type: list
    elements: dict
    required: true
  hosts:
    description: Every host, name to its figures as M(autopod.autopod.pod_info) returns them in RV(host).
    type: dict
    required: true
  batch:
    description: The hosts being patched now; no pod goes there.
    type: list
    elements: str
    required: true
  excluded:
    description: Other hosts no pod may go to (for example hosts the run has given up on).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Plan the batch's moves
  ansible.builtin.set_fact:
    plan: "{{ pods | autopod.autopod.place_pods(host_figures, ansible_play_batch) }}"
"""

RETURN = r"""
_value:
  description: V(peers) (pod to its peers, placement first), V(unplaced) (pod to the reason) and V(load)
    (peer to the memory, disk and number of pods planned for it).
  type: dict
"""


def place_pods(pods: List[Mapping[str, Any]], hosts: Mapping[str, Mapping[str, Any]], batch: List[str],
               excluded: List[str] = ()) -> Dict[str, Any]:
    try:
        wanted = [Pod(name=str(p["name"]), host=str(p["host"]), memory=int(p["memory"] or 0),
                      disk=int(p.get("disk") or 0)) for p in pods]
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("place_pods: each pod needs name, host and memory: %s" % exc)
    fleet = [host_from_facts(name, facts or {}) for name, facts in hosts.items()]
    return place(fleet, wanted, batch, excluded).as_dict()


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"place_pods": place_pods}
