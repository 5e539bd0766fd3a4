"""The modules used together in a playbook, and through pytest-ansible's fixtures."""

from __future__ import annotations

import os

from tests.support.ansible_cli import playbook

HERE = os.path.dirname(os.path.abspath(__file__))


def test_playbook_with_module_defaults_group(rootfs, bridge, state_dir, criu_path):
    run = playbook(os.path.join(HERE, "playbooks", "pod_cycle.yml"),
                   {"state_dir": state_dir, "rootfs": rootfs, "bridge": bridge, "criu_path": criu_path})
    assert run.returncode == 0, run.stdout
    assert "failed=0" in run.stdout and "ok=8" in run.stdout, run.stdout
