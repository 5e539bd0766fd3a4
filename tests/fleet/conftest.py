"""Tier 3, at fleet size: a lab of twelve machine-like hosts, reached by Ansible over SSH; nothing mocked."""

from __future__ import annotations

import pytest

from lab import control
from lab import topology as topo
from tests.support.cleanup import adopt_orphans, reap_orphans
from tests.support.prerequisites import require_criu

FLEET_HOSTS = 12


@pytest.fixture(scope="module")
def fleet_lab():
    """A fresh lab of FLEET_HOSTS hosts (whatever an earlier run left is removed first); torn down after
    the module, so that the three-host lab of tests/lab starts fresh too."""
    require_criu()
    adopt_orphans()
    control.down()
    try:
        yield control.up(FLEET_HOSTS), [topo.host_name(i) for i in range(1, FLEET_HOSTS + 1)]
    finally:
        control.down()
        reap_orphans()
