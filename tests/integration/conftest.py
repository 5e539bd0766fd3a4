"""Tier 2: real namespaces, real CRIU, real pyroute2, modules run through the Ansible CLI against localhost."""

from __future__ import annotations

import os
import re
import shutil
import sys

import pytest

from tests.support.bridges import host_bridge
from tests.support.cleanup import adopt_orphans, reap_orphans, remove_pod_leftovers, remove_state_dir
from tests.support.prerequisites import require_criu
from workloads.rootfs import build_rootfs

WORK = "/var/tmp/autopod-it"
POD_PREFIX = "it-"
BRIDGE = "apit0"
BRIDGE_ADDRESS = "10.213.0.1"
PREFIXLEN = 24


def _clean_everything() -> None:
    if os.path.isdir(WORK):
        for entry in os.listdir(WORK):
            if entry.startswith("state-"):
                remove_state_dir(os.path.join(WORK, entry))
    remove_pod_leftovers(POD_PREFIX)
    host_bridge(BRIDGE, BRIDGE_ADDRESS, up=False)
    reap_orphans()


@pytest.fixture(scope="session", autouse=True)
def environment():
    """Root and CRIU present (else fail), leftovers of a crashed run removed, and removed again at the end."""
    require_criu()
    adopt_orphans()
    _clean_everything()
    os.makedirs(WORK, exist_ok=True)
    yield
    _clean_everything()
    shutil.rmtree(WORK, ignore_errors=True)


@pytest.fixture(scope="session")
def criu_path() -> str:
    return require_criu()


@pytest.fixture(scope="session")
def rootfs() -> str:
    return build_rootfs(os.path.join(WORK, "rootfs"))


@pytest.fixture(scope="session")
def bridge() -> str:
    host_bridge(BRIDGE, BRIDGE_ADDRESS, up=True, prefixlen=PREFIXLEN)
    yield BRIDGE
    host_bridge(BRIDGE, BRIDGE_ADDRESS, up=False)


@pytest.fixture(scope="session")
def localhost_inventory() -> str:
    path = os.path.join(WORK, "inventory.ini")
    with open(path, "w") as handle:
        handle.write("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    return path


@pytest.fixture
def adhoc(ansible_adhoc, localhost_inventory):
    """Run a collection module in-process through pytest-ansible's ad-hoc fixture; returns its result.

    Faster than the CLI (no new controller per call); it has no check or diff mode, so tests that need
    those use tests.support.ansible_cli.module instead.
    """
    host = ansible_adhoc(inventory=localhost_inventory)["localhost"]

    def run(module_name: str, **args) -> dict:
        return dict(getattr(host, "autopod.autopod." + module_name)(**args)["localhost"])
    return run


@pytest.fixture
def state_dir(request) -> str:
    path = os.path.join(WORK, "state-" + re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name)[:60])
    yield path
    remove_state_dir(path)
    reap_orphans()


def counter_pod(name: str, rootfs: str, state_dir: str, address: str = None, mib: int = 16,
                **extra) -> dict:
    """Arguments of pod_create for a counter pod (see workloads/counter.c) listening on port 7000."""
    args = {"name": name, "rootfs": rootfs, "command": ["/bin/counter", "7000", str(mib), "10"],
            "state_dir": state_dir}
    if address:
        args["network"] = {"address": "%s/%d" % (address, PREFIXLEN), "bridge": BRIDGE,
                           "gateway": BRIDGE_ADDRESS}
    args.update(extra)
    return args
