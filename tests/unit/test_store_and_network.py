"""Manifests on disk, and the network helpers that need no namespace."""

from __future__ import annotations

import json
import os
import stat
import struct
import subprocess
import sys

from ansible_collections.autopod.autopod.plugins.module_utils import network
from ansible_collections.autopod.autopod.plugins.module_utils.pod import PodSpec
from ansible_collections.autopod.autopod.plugins.module_utils.store import (
    CHECKPOINTED, RUNNING, Manifest, PodStore, write_private_json)


def test_manifest_round_trip_and_private_files(tmp_path):
    store = PodStore(str(tmp_path / "state"))
    spec = PodSpec.from_params({"name": "web", "rootfs": str(tmp_path), "command": ["/bin/true"],
                                "network": {"address": "10.0.0.5/24", "bridge": "br0"}})
    manifest = Manifest(spec=spec, status=CHECKPOINTED, image_dir="/img", generation=3)
    store.save(manifest)
    assert store.names() == ["web"]
    assert store.load("web") == manifest
    assert stat.S_IMODE(os.stat(store.manifest_path("web")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.pod_dir("web")).st_mode) == 0o700
    assert store.load("db") is None


def test_a_dead_pid_is_not_running(tmp_path):
    spec = PodSpec.from_params({"name": "web", "rootfs": str(tmp_path), "command": ["/bin/true"]})
    manifest = Manifest(spec=spec)
    manifest.mark_running(pid=os.getpid(), start_time=1, supervisor_pid=1)  # wrong start time: a reused PID
    assert manifest.status == RUNNING and manifest.state() != RUNNING


def test_write_private_json_replaces_atomically(tmp_path):
    path = str(tmp_path / "x.json")
    write_private_json(path, {"a": 1})
    write_private_json(path, {"a": 2})
    assert json.load(open(path)) == {"a": 2}
    assert os.listdir(tmp_path) == ["x.json"]


def test_host_veth_names_fit_the_kernel_limit():
    names = {network.host_veth_name("x" * n) for n in range(1, 33)}
    assert len(names) == 32 and all(len(n) <= 15 for n in names)


def test_gratuitous_arp_frame():
    frame = network._arp_frame("02:00:00:00:00:05", "10.0.0.5", 1)
    assert len(frame) == 42
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == bytes([2, 0, 0, 0, 0, 5])
    assert struct.unpack("!H", frame[12:14])[0] == 0x0806
    assert struct.unpack("!H", frame[20:22])[0] == 1
    assert frame[28:32] == frame[38:42] == bytes([10, 0, 0, 5])  # sender IP == target IP


def test_arp_request_for_a_neighbour_the_pod_is_resolving():
    frame = network._arp_frame("02:00:00:00:00:05", "10.0.0.5", 1, "10.0.0.3")
    assert len(frame) == 42 and frame[:6] == b"\xff" * 6
    assert struct.unpack("!H", frame[20:22])[0] == 1  # who-has
    assert frame[22:28] == bytes([2, 0, 0, 0, 0, 5]) and frame[28:32] == bytes([10, 0, 0, 5])  # tell the pod
    assert frame[32:38] == b"\x00" * 6 and frame[38:42] == bytes([10, 0, 0, 3])


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))


def test_reading_pods_does_not_import_pyroute2():
    """pod_info, patch_status and the other modules that touch no network start without pyroute2's 0.1 s."""
    ran = _python("import sys\n"
                  "from ansible_collections.autopod.autopod.plugins.module_utils import pods, network\n"
                  "assert 'pyroute2' not in sys.modules, 'imported'\n"
                  "network.require_pyroute2()\n"
                  "assert 'pyroute2' in sys.modules, 'not imported when needed'\n")
    assert ran.returncode == 0, ran.stderr


def test_a_host_without_pyroute2_gets_the_missing_library_message():
    ran = _python("import sys\n"
                  "sys.modules['pyroute2'] = None  # what an import of a missing package does\n"
                  "from ansible_collections.autopod.autopod.plugins.module_utils import network\n"
                  "from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError\n"
                  "try:\n"
                  "    network.address_holder('10.0.0.5')\n"
                  "except AutopodError as exc:\n"
                  "    print(exc.msg)\n")
    assert ran.returncode == 0 and "Failed to import the required Python library (pyroute2)" in ran.stdout, ran
