"""Nothing of a pod crosses the network in clear text during a move, whatever the strategy (pre-copy needs
soft-dirty tracking, which this machine's kernel lacks: the QEMU tier's cross-kernel test captures it).

A counter pod holds a marker in its memory (its environment) and in a file of its rootfs; a capture on
the lab switch records every frame of the move. With the move's TLS (the default) the marker is
nowhere in the capture; with `encryption: none` the same capture finds it, which shows the capture
would have seen it.
"""

from __future__ import annotations

import os
import secrets

import pytest

from tests.lab import pods
from tests.lab.capture import SwitchCapture

HOSTS = ["lab1", "lab2"]


def secret_pod(lab, name: str, offset: int) -> bytes:
    """A counter pod whose memory and files hold a fresh marker; returns the marker."""
    marker = "autopod-marker-%s" % secrets.token_hex(8)
    pods.place(lab, "lab1", name, offset, env={"POD_SECRET": " ".join([marker] * 64)})
    pods.shell(lab, "lab1", "for i in $(seq 64); do echo %s; done > %s"
               % (marker, os.path.join(pods.PODS_DIR, name, "secret.txt")))
    return marker.encode()


@pytest.mark.parametrize("strategy", ["post-copy", "stop-and-copy"])  # pre-copy: tests/qemu/test_cross_kernel.py
def test_a_move_shows_nothing_of_the_pod_on_the_wire(lab, clean, strategy):
    marker = secret_pod(lab, "enc-" + strategy, 24)
    with SwitchCapture() as capture:
        moved = pods.move(lab, "enc-" + strategy, "lab1", "lab2", strategy=strategy)
    assert moved.get("changed") and moved["result"] == "moved" and moved["strategy"] == strategy, moved
    assert len(capture.data) > moved["bytes"]["total"], "the capture missed the move's traffic"
    assert capture.dropped == 0, "the capture dropped %d frames" % capture.dropped
    assert not capture.holds(marker), "the pod's marker crossed the wire in clear text"
    assert pods.running_on(lab, "enc-" + strategy, HOSTS) == ["lab2"]


def test_without_encryption_the_same_capture_finds_the_marker(lab, clean):
    marker = secret_pod(lab, "enc-clear", 25)
    with SwitchCapture() as capture:
        moved = pods.move(lab, "enc-clear", "lab1", "lab2", strategy="stop-and-copy", encryption="none")
    assert moved.get("changed") and moved["result"] == "moved", moved
    assert capture.holds(marker), "the capture did not see the clear-text move: it proves nothing"
