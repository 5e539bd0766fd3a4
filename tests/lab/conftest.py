"""Tier 3: the lab. Several machine-like hosts, reached by Ansible over SSH; nothing mocked."""

from __future__ import annotations

import pytest

from lab import control
from lab import topology as topo
from tests.lab import fleet as fleet_setup
from tests.lab import pods
from tests.support.cleanup import adopt_orphans, reap_orphans
from tests.support.prerequisites import require_criu

LAB_HOSTS = 3


@pytest.fixture(scope="session")
def lab():
    """A fresh lab of LAB_HOSTS hosts (whatever an earlier run left is removed first); torn down at the end."""
    require_criu()
    adopt_orphans()
    control.down()
    inventory = control.up(LAB_HOSTS)
    yield inventory
    control.down()
    reap_orphans()


@pytest.fixture
def hosts(lab):
    return [topo.host_name(i) for i in range(1, LAB_HOSTS + 1)]


@pytest.fixture
def clean(lab, hosts):
    """After the test: every lab host back on the network, and no pod left anywhere."""
    yield
    for host in hosts:
        control.heal(host)
    pods.remove_everywhere(lab, hosts)


@pytest.fixture
def fleet(lab, hosts):
    """A pod on every host and a security update waiting (tests/lab/fleet.py); each pod's watcher."""
    yield from fleet_setup.fleet(lab, hosts)
