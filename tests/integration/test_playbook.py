"""The modules used together in a playbook, and through pytest-ansible's fixtures."""

from __future__ import annotations

import os
import re

from tests.support.ansible_cli import ROOT, playbook

HERE = os.path.dirname(os.path.abspath(__file__))


def test_playbook_with_module_defaults_group(rootfs, bridge, state_dir, criu_path):
    run = playbook(os.path.join(HERE, "playbooks", "pod_cycle.yml"),
                   {"state_dir": state_dir, "rootfs": rootfs, "bridge": bridge, "criu_path": criu_path})
    assert run.returncode == 0, run.stdout
    recap = re.search(r"^\S+\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=0\s", run.stdout, re.M)
    assert recap and int(recap.group(1)) == 10, run.stdout


def test_missing_inputs_are_refused_before_anything_runs():
    bare = playbook(os.path.join(ROOT, "playbooks", "move_pod.yml"), {})
    assert bare.returncode != 0 and "move_pod.yml needs -e pod=NAME -e from=HOST -e to=HOST" in bare.stdout, bare.stdout
    unknown = playbook(os.path.join(ROOT, "playbooks", "move_pod.yml"), {"pod": "web", "from": "web1", "to": "web2"})
    assert unknown.returncode != 0 and "both hosts in the inventory" in unknown.stdout, unknown.stdout
    role = playbook(os.path.join(HERE, "playbooks", "pod_move_without_a_pod.yml"), {})
    assert role.returncode != 0, role.stdout
    assert "missing required arguments: pod_move_name, pod_move_to" in role.stdout, role.stdout
    assert "Read the pod on its source" not in role.stdout
