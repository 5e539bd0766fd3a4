"""The role pod_evacuate planning from a read of the fleet kept from an earlier batch, as rolling_patch.yml
does from its second batch on, against the fault that read cannot see: a peer whose memory filled up after
it was read, for reasons other than the run's own moves (here the operator caps its pods' cgroup).

The pod is the fleet's Redis (tests/lab/fleet.py): writers keep requests in flight and its memory keeps
changing, and every acknowledged write is read back afterwards.
"""

from __future__ import annotations

import datetime
import json

import yaml

from ansible_collections.autopod.autopod.plugins.filter.place_pods import place_pods
from tests.lab import pods
from tests.lab.fleet import HOME, REDIS_POD
from tests.support.ansible_cli import module, playbook

SOURCE = HOME[REDIS_POD]
# Less than any pod plus the headroom a receiver asks for (MEMORY_MARGIN, 64 MiB): the peer must refuse.
PEER_SLACK_MIB = 16


def _evacuation_play(hosts, record):
    return [{"name": "Evacuate %s, planning from a kept read" % SOURCE, "hosts": SOURCE, "gather_facts": False,
             "tasks": [
                 {"name": "Evacuate", "ansible.builtin.include_role": {"name": "autopod.autopod.pod_evacuate"},
                  "vars": {"pod_evacuate_fleet": hosts, "pod_evacuate_fleet_read": "{{ kept_read }}",
                           "pod_evacuate_fleet_read_at": "{{ kept_read_at }}"}},
                 {"name": "Hand what it did to the test", "delegate_to": "localhost",
                  "ansible.builtin.copy": {"dest": record, "mode": "0600", "content": (
                      "{{ {'read': pod_evacuate_to_read, 'moves': pod_evacuate_moves,"
                      " 'complete': pod_evacuate_complete} | to_json }}")}}]}]


def test_a_peer_that_filled_up_since_the_kept_read_refuses_and_the_next_peer_takes_the_pod(
        lab, hosts, fleet, tmp_path):
    redis = fleet[REDIS_POD]
    kept = [dict(module("pod_info", {"disk_usage": True}, host=host, inventory=lab), item=host) for host in hosts]
    kept_at = datetime.datetime.now(datetime.timezone.utc).isoformat()
    first, second = place_pods(kept, [SOURCE])["peers"][REDIS_POD]
    path, record = tmp_path / "evacuate.yml", tmp_path / "record.json"
    path.write_text(yaml.safe_dump(_evacuation_play(hosts, str(record))))
    room = pods.cap_pods_memory(lab, first, PEER_SLACK_MIB << 20)
    try:
        assert room <= PEER_SLACK_MIB << 20, room  # what the kept read does not know
        result = playbook(str(path), {"kept_read": kept, "kept_read_at": kept_at}, inventory=lab)
    finally:
        pods.uncap_pods_memory(lab, first)
    assert result.returncode == 0, result.stdout[-6000:]
    done = json.loads(record.read_text())
    assert done["read"] == [SOURCE], done  # the peers' figures came from the kept read, the batch's host was read
    refused, moved = done["moves"]
    assert (refused["to"], refused["ok"], refused["runs_on"]) == (first, False, SOURCE), refused
    assert "not enough memory here" in refused["msg"], refused
    assert (moved["to"], moved["ok"], moved["runs_on"]) == (second, True, second), moved
    assert done["complete"] is True
    assert pods.running_on(lab, REDIS_POD, hosts) == [second]
    assert all(p["name"] != REDIS_POD for p in module("pod_info", {}, host=first, inventory=lab)["pods"])
    redis.wait_requests(100)
    redis.stop()
    assert redis.errors() == [] and redis.lost() == [], redis.report()
