"""A desktop session moves between lab hosts while a VNC client stays connected to it.

The pod runs TigerVNC's Xvnc, xclock and an xterm that counts, as the pod's own user, from Debian's
packages. A VNC client on the lab's client host takes a screenshot before and after each move, on the
same connection: the windows are where they were (no pixel outside them changed), the terminal's text
changed, and the count the session writes went on from where it was, never starting again.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from lab import topology as topo
from tests.lab import pods
from workloads import desktop

OFFSET = 30


def count(host: str, rootfs: str) -> int:
    """The session's count, read from its rootfs on `host`."""
    with open(os.path.join(topo.host_dir(host), "init.json")) as handle:
        init = json.load(handle)["init_pid"]
    try:
        with open("/proc/%d/root%s/home/desk/counter" % (init, rootfs)) as counter:
            return int(counter.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def wait_count(host: str, rootfs: str, above: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while count(host, rootfs) <= above:
        assert time.monotonic() < deadline, "the session's count stayed at %d on %s" % (count(host, rootfs), host)
        pause.wait(0.1)
    return count(host, rootfs)


@pytest.fixture
def session(lab, hosts):
    rootfs = os.path.join(pods.PODS_DIR, "desk")
    pods.shell(lab, "lab1", "rm -rf %s && mkdir -p %s && cp -a %s %s"
               % (rootfs, pods.PODS_DIR, pods.desktop_rootfs(), rootfs))
    created = pods.module("pod_create", desktop.pod_args("desk", rootfs, "%s/%d" % (topo.pod_ip(OFFSET), topo.PREFIXLEN),
                                                         topo.HOST_BRIDGE), host="lab1", inventory=lab)
    assert created.get("changed") and created["pod"]["state"] == "running", created
    viewer = desktop.Viewer(topo.pod_ip(OFFSET), topo.netns_path(topo.CLIENT_NETNS))
    yield created["pod"]["definition"], viewer
    viewer.close()
    pods.remove_everywhere(lab, hosts)


def test_a_desktop_session_moves_and_its_viewer_stays_connected(lab, session, tmp_path):
    definition, viewer = session
    rootfs = definition["rootfs"]
    wait_count("lab1", rootfs, 2)
    host, shots = "lab1", []
    for destination, strategy in (("lab2", "post-copy"), ("lab1", "stop-and-copy")):
        before = viewer.screenshot(str(tmp_path / ("%s-before.png" % strategy)))
        counted = count(host, rootfs)
        moved = pods.move(lab, "desk", host, destination, strategy=strategy, definition=definition)
        assert moved.get("changed") and moved["result"] == "moved", moved.get("msg")
        now = wait_count(destination, rootfs, counted + 1)
        assert now < counted + 30, "the count went on from %d (it did not start again): %d" % (counted, now)
        after = viewer.screenshot(str(tmp_path / ("%s-after.png" % strategy)))
        change = desktop.compare(before, after, [desktop.XTERM, desktop.XCLOCK])
        assert change["same_size"] and change["changed_outside"] == 0, change  # windows where they were
        assert change["changed_inside"][0] > 0, change  # the terminal's text changed: the count advanced
        shots.append((strategy, counted, now, moved["downtime_ms"], change))
        host = destination
    assert pods.running_on(lab, "desk", ["lab1", "lab2"]) == ["lab1"]
    print("desktop: %s; screenshots in %s" % (shots, tmp_path))
