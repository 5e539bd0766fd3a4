"""The modules used together in a playbook, and through pytest-ansible's fixtures."""

from __future__ import annotations

import os
import re

from tests.support.ansible_cli import playbook

HERE = os.path.dirname(os.path.abspath(__file__))


def test_playbook_with_module_defaults_group(rootfs, bridge, state_dir, criu_path):
    run = playbook(os.path.join(HERE, "playbooks", "pod_cycle.yml"),
                   {"state_dir": state_dir, "rootfs": rootfs, "bridge": bridge, "criu_path": criu_path})
    assert run.returncode == 0, run.stdout
    recap = re.search(r"^\S+\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=0\s", run.stdout, re.M)
    assert recap and int(recap.group(1)) == 10, run.stdout
