"""playbooks/rolling_patch.yml on a fleet: twelve lab hosts, 24 pods of mixed sizes, patched three at a time.

Every host has the lab repository's autopod-demo-kernel 1.0; 1.1 is published as a security update that
asks for a reboot. Two counter pods run on each host (16, 32 or 48 MiB each); one host, the last, is nearly
full: the operator's memory.max on its pods' cgroup leaves less room than any pod needs, so placement must
never send it a pod while the others are patched, and the kernel would kill one (oom_kill) if it did. A
client on the lab's client host watches six pods, every size among them.
"""

from __future__ import annotations

import itertools
import json
import os

import pytest
import yaml

from lab import aptrepo, control
from lab import topology as topo
from tests.lab import pods
from tests.support.ansible_cli import ROOT, playbook

PLAYBOOK = os.path.join(ROOT, "playbooks", "rolling_patch.yml")
SERIAL = 3
SIZES_MIB = (16, 32, 48)
FIRST_OFFSET = 40
KERNEL = [aptrepo.Package("autopod-demo-kernel", v, "autopod-lab-security", needs_reboot=True) for v in ("1.0", "1.1")]
# Room the full host keeps above what its own pods use: less than the smallest pod plus the headroom a
# receiver asks for a move (placement's and pod_receive's MEMORY_MARGIN, 64 MiB), yet enough to take its
# own pods back one at a time after its reboot.
FULL_HOST_SLACK_MIB = 72


def _pods(hosts):
    """name -> (home, offset, MiB): two per host, sizes in turn."""
    sizes = itertools.cycle(SIZES_MIB)
    return {"fl-%s-%s" % (host, letter): (host, FIRST_OFFSET + 2 * index + n, next(sizes))
            for index, host in enumerate(hosts) for n, letter in enumerate("ab")}


def _prepare(inventory, hosts, fleet_pods, tmp_path):
    """Every host at once (one play, a fork per host): kernel 1.0, then its two pods from the counter rootfs."""
    tasks = [{"name": "Install kernel 1.0", "ansible.builtin.shell":
              "apt-get update -q && apt-get install -y -q autopod-demo-kernel=1.0 && rm -f /var/run/reboot-required*"}]
    for letter in "ab":
        tasks += [
            {"name": "Copy pod %s's rootfs" % letter, "ansible.builtin.shell":
             "rm -rf {d}/fl-{{{{ inventory_hostname }}}}-{l} && mkdir -p {d} && cp -a {base} {d}/fl-{{{{ inventory_hostname }}}}-{l}"
             .format(d=pods.PODS_DIR, base=pods.base_rootfs(), l=letter)},
            {"name": "Start pod %s" % letter, "autopod.autopod.pod_create": {
                "name": "fl-{{ inventory_hostname }}-%s" % letter,
                "rootfs": "%s/fl-{{ inventory_hostname }}-%s" % (pods.PODS_DIR, letter),
                "command": ["/bin/counter", "7000", "{{ fleet_pods['fl-' ~ inventory_hostname ~ '-%s'][2] }}" % letter,
                            "10"],
                "network": {"address": "{{ fleet_ip['fl-' ~ inventory_hostname ~ '-%s'] }}/%d" % (letter, topo.PREFIXLEN),
                            "bridge": topo.HOST_BRIDGE}}}]
    path = tmp_path / "prepare.yml"
    path.write_text(yaml.safe_dump([{"name": "Prepare the fleet", "hosts": "all", "gather_facts": False,
                                     "tasks": tasks}]))
    ips = {name: topo.pod_ip(offset) for name, (_home, offset, _mib) in fleet_pods.items()}
    result = playbook(str(path), {"fleet_pods": fleet_pods, "fleet_ip": ips}, inventory=inventory,
                      options=["--forks", str(len(hosts))])
    assert result.returncode == 0, result.stdout[-6000:]


def _fill(inventory, host):
    """The operator caps the host's pods: room for FULL_HOST_SLACK_MIB above what they use now."""
    room = pods.cap_pods_memory(inventory, host, FULL_HOST_SLACK_MIB << 20)
    assert room <= FULL_HOST_SLACK_MIB << 20, room  # what placement now sees for it


def _oom_kills(inventory, host):
    events = pods.shell(inventory, host, pods.POD_CGROUP + "cat $d/$e")["stdout"]
    return int(dict(line.split() for line in events.splitlines()).get("oom_kill", 0))


@pytest.mark.fleet
def test_a_fleet_of_twelve_is_patched_three_at_a_time_and_no_peer_is_overcommitted(fleet_lab, tmp_path):
    inventory, hosts = fleet_lab
    full_host = hosts[-1]
    fleet_pods = _pods(hosts)
    aptrepo.publish(topo.repo_dir(), KERNEL[:1])
    _prepare(inventory, hosts, fleet_pods, tmp_path)
    # a sample: both pods of the first host of batches 1, 2 and 3 (every size among them)
    sampled = {name: pods.client(offset) for name, (home, offset, _mib) in fleet_pods.items()
               if hosts.index(home) % 4 == 0}
    try:
        for watcher in sampled.values():
            watcher.wait_lines(10)
        _fill(inventory, full_host)
        boots = {host: control.boot_id(host) for host in hosts}
        aptrepo.publish(topo.repo_dir(), KERNEL)
        report_dir = tmp_path / "report"
        run = playbook(PLAYBOOK, {"autopod_report_dir": str(report_dir), "autopod_serial": SERIAL},
                       inventory=inventory)
        (tmp_path / "ansible-playbook.log").write_text(run.stdout)
        assert run.returncode == 0, run.stdout[-8000:]
        with open(str(sorted(report_dir.glob("*.json"))[-1])) as handle:
            report = json.load(handle)
        for host in hosts:  # every host patched and rebooted
            record = report["hosts"][host]
            assert record["result"] == "patched" and record["rebooted"] is True, (host, record)
            assert record["boot_id_before"] == boots[host] != record["boot_id_after"], (host, record)
        moves = report["moves"]
        assert all(move["ok"] for move in moves), [m for m in moves if not m["ok"]]
        evacuations = [m for m in moves if m["phase"] == "evacuate"]
        assert sorted(m["pod"] for m in evacuations) == sorted(fleet_pods)
        assert not [m for m in evacuations if m["to"] == full_host], "a pod was sent to the full host"
        assert _oom_kills(inventory, full_host) == 0
        batches = [hosts[i:i + SERIAL] for i in range(0, len(hosts), SERIAL)]
        for batch in batches:  # a batch's pods never go to a host of the same batch
            assert not [m for m in evacuations if m["from"] in batch and m["to"] in batch], batch
        for name, (home, _offset, _mib) in fleet_pods.items():  # every pod ends on its home host
            assert pods.running_on(inventory, name, [home]) == [home], name
        for name, watcher in sampled.items():  # their clients saw pauses, never a reset or a gap
            watcher.wait_lines(10)
            seen = watcher.report()
            assert seen["error"] is None and not seen["closed_by_peer"], (name, seen)
            assert seen["gaps"] == [] and seen["repeats"] == [], (name, seen)
            print("%s: longest pause %.0f ms over %d lines" % (name, seen["max_pause_ms"], seen["lines"]))
        spread = {}
        for move in evacuations:
            spread[move["to"]] = spread.get(move["to"], 0) + 1
        print("evacuations per peer: %s" % dict(sorted(spread.items())))
    finally:
        for watcher in sampled.values():
            watcher.close()
