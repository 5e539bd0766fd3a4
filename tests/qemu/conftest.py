"""Tier 4: QEMU guests booting Debian's real kernels (lab/guest.py), reached over SSH; nothing mocked."""

from __future__ import annotations

import pytest

from lab import control
from tests.support.cleanup import adopt_orphans, reap_orphans
from tests.support.prerequisites import require_criu

KERNEL_SERIES = ("6.1", "6.12")  # lab1 boots the first, lab2 the second


@pytest.fixture(scope="session")
def guests():
    """A fresh lab of two guests, on kernels 6.1 and 6.12; torn down at the end."""
    require_criu()
    adopt_orphans()
    control.down()
    inventory = control.up(len(KERNEL_SERIES), control.QEMU, KERNEL_SERIES)
    yield inventory
    control.down()
    reap_orphans()
