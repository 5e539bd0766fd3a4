"""The filter autopod.autopod.place_pods: the plan of which peer takes which pod (plugin_utils/placement.py)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.autopod.autopod.plugins.plugin_utils.placement import from_pod_info, place

DOCUMENTATION = r"""
name: place_pods
short_description: Plan which peer takes each pod while a batch of hosts is patched
version_added: 0.2.0
description:
  - Places the running pods of the hosts of O(batch). Never on a host of the batch nor an excluded one, nor
    outside the peers O(allowed) gives a host; only on peers whose CPU features include the pod's host's; never
    more memory or disk than a peer has free, counting every pod planned for it; the peer with the most memory
    left first, the biggest pods first.
  - Each pod gets its placement followed by up to two other peers that also fit it, where it is offered if the
    first refuses.
positional: batch
options:
  _input:
    description:
      - The results of M(autopod.autopod.pod_info) registered in a loop over the hosts (V(item) is the host's
        inventory name), with O(autopod.autopod.pod_info#module:disk_usage) set when root filesystems are copied.
      - A host whose result failed takes nothing.
    type: list
    elements: dict
    required: true
  batch:
    description: The hosts being patched now; their pods are placed, and nothing goes there.
    type: list
    elements: str
    required: true
  excluded:
    description: Other hosts no pod may go to (for example hosts the run has given up on).
    type: list
    elements: str
    default: []
  allowed:
    description: Host to the only peers its pods may go to (the playbooks' C(autopod_peers)); a host not named may
      use any peer.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Take every host's figures
  autopod.autopod.pod_info:
    disk_usage: true
  delegate_to: "{{ item }}"
  loop: "{{ ansible_play_hosts_all }}"
  run_once: true
  register: figures

- name: Plan the batch's moves
  ansible.builtin.set_fact:
    plan: "{{ figures.results | autopod.autopod.place_pods(ansible_play_batch) }}"
  run_once: true
"""

RETURN = r"""
_value:
  description:
    - V(peers), pod to its peers (its placement first); V(unplaced), pod to the reason no peer takes it;
      V(load), peer to the memory and disk (bytes) and the number of pods planned for it.
  type: dict
"""


def place_pods(results: List[Mapping[str, Any]], batch: Sequence[str], excluded: Sequence[str] = (),
               allowed: Mapping[str, Sequence[str]] = None) -> Dict[str, Any]:
    try:
        hosts, pods = from_pod_info(results, allowed or {})
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("place_pods: expected pod_info results registered in a loop over hosts: %s" % exc)
    return place(hosts, pods, batch, excluded).as_dict()


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"place_pods": place_pods}
