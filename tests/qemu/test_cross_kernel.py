"""A pod moves live between hosts on different kernels (6.1 and 6.12) and back, its connection open:
there with post-copy, back with pre-copy (Debian's kernels have the soft-dirty tracking it needs). Its
memory holds a marker that a capture on the lab switch must not find: pre-copy's rounds are encrypted
too (the other strategies are shown in tests/lab/test_encryption.py)."""

from __future__ import annotations

import secrets
import threading
import time

import pytest

from lab import control
from tests.lab import pods
from tests.lab.capture import SwitchCapture

pytestmark = pytest.mark.guests  # a command of its own (README): about 6 to 14 minutes under TCG


def running_kernel(inventory: str, host: str) -> str:
    return pods.shell(inventory, host, "uname -r")["stdout"].strip()


def test_pod_moves_from_61_to_612_and_back(guests):
    kernels = {host: running_kernel(guests, host) for host in ("lab1", "lab2")}
    assert kernels["lab1"].startswith("6.1.") and kernels["lab2"].startswith("6.12."), kernels
    marker = "autopod-guest-marker-%s" % secrets.token_hex(8)
    try:
        with pods.watched(guests, "lab1", "xk-web", 0, env={"POD_SECRET": " ".join([marker] * 64)}) as watcher:
            for source, destination, strategy in (("lab1", "lab2", "post-copy"), ("lab2", "lab1", "pre-copy")):
                watcher.reset_pause_clock()
                with SwitchCapture() as capture:
                    moved = pods.move(guests, "xk-web", source, destination, strategy=strategy)
                assert moved.get("changed") and moved["strategy"] == strategy, moved
                assert len(capture.data) > moved["bytes"]["total"] and not capture.holds(marker.encode()), strategy
                if strategy == "pre-copy":
                    rounds = moved["pre_copy_pages"]
                    assert len(rounds) == 2 and rounds[0] >= 16 * 256, rounds  # the first round has the 16 MiB
                    assert rounds[1] < rounds[0] / 4 and moved["final_dump_pages"] < rounds[0] / 4, moved
                watcher.wait_lines(10)
                report = watcher.report()
                assert report["error"] is None and not report["closed_by_peer"], report
                assert report["gaps"] == [] and report["repeats"] == [], report
                assert pods.running_on(guests, "xk-web", ["lab1", "lab2"]) == [destination]
                print("%s (%s) -> %s (%s): strategy %s, client's longest pause %.0f ms, pages %s then %s frozen"
                      % (source, kernels[source], destination, kernels[destination], moved["strategy"],
                         report["max_pause_ms"], moved["pre_copy_pages"], moved["final_dump_pages"]))
            assert watcher.verify().startswith("verify ok"), "the pod's memory must arrive intact"
    finally:
        pods.remove_everywhere(guests, ["lab1", "lab2"])


def test_a_destination_that_dies_during_pre_copy_rounds_leaves_the_pod_where_it_was(guests):
    """The fault matrix's pre-copy row, where pre-copy runs (the guests' kernels track dirty pages)."""
    credentials = pods.credentials()
    try:
        with pods.watched(guests, "lab2", "xk-pre", 1, mib=384) as watcher:  # its first round takes long enough under TCG to strike in
            receiver = pods.receive(guests, "xk-pre", "lab2", "lab1", credentials)
            result = {}
            move = threading.Thread(target=lambda: result.update(
                pods.migrate(guests, "xk-pre", "lab2", receiver, credentials, strategy="pre-copy")))
            before = control.boot_id("lab1")
            move.start()
            deadline = time.monotonic() + 300
            while "pages: page stream 1" not in control.ssh("lab1", "cat %s/incoming/xk-pre.log" % pods.IMAGES, check=False):
                assert time.monotonic() < deadline, "the first pre-copy round never started"
            control.reboot("lab1", wait=False)
            move.join(600)
            assert result.get("failed") and result["result"] == "not_moved" and result["runs_on"] == "source", result
            watcher.wait_lines(10, timeout=60)
            report = watcher.report()
            assert report["error"] is None and report["gaps"] == [], report
            control.wait_rebooted("lab1", before)  # the guest comes back, for what follows
            assert pods.running_on(guests, "xk-pre", ["lab1", "lab2"]) == ["lab2"]
            assert watcher.verify().startswith("verify ok")
    finally:
        pods.remove_everywhere(guests, ["lab1", "lab2"])


def test_a_pause_budget_stops_pre_copy_before_the_freeze_when_the_pod_writes_too_fast(guests):
    """The pause budget where pre-copy runs: its rounds measure how fast the pod writes, and a pod whose last
    round could never fit the budget is not frozen at all; a budget the rounds can meet lets it move."""
    credentials = pods.credentials()
    try:
        with pods.watched(guests, "lab1", "xk-budget", 2, mib=64, write_mib_s=64) as watcher:
            receiver = pods.receive(guests, "xk-budget", "lab1", "lab2", credentials)
            refused = pods.migrate(guests, "xk-budget", "lab1", receiver, credentials, strategy="pre-copy",
                                   max_pause_ms=200)
            assert refused.get("failed") and refused["result"] == "not_moved" and refused["runs_on"] == "source", refused
            assert "pre-copy cannot meet the pause budget of 200 ms: after 6 rounds the pod writes" in refused["msg"], refused
            watcher.wait_lines(10)
            report = watcher.report()
            assert report["error"] is None and report["gaps"] == [] and report["repeats"] == [], report
            assert pods.running_on(guests, "xk-budget", ["lab1", "lab2"]) == ["lab1"]
            watcher.reset_pause_clock()
            moved = pods.move(guests, "xk-budget", "lab1", "lab2", strategy="pre-copy", max_pause_ms=30000)
            assert moved.get("changed") and moved["strategy"] == "pre-copy", moved
            judged = moved["pre_copy_judged"]
            assert len(moved["pre_copy_pages"]) == 2 and judged["dirty_mib_s"] > 1, moved
            assert judged["expected_pause_ms"] <= 30000, moved
            watcher.wait_lines(10)
            report = watcher.report()
            assert report["error"] is None and report["gaps"] == [] and report["repeats"] == [], report
            assert pods.running_on(guests, "xk-budget", ["lab1", "lab2"]) == ["lab2"]
            print("refused: %s; moved with pre-copy rounds %s, judged %s, client's longest pause %.0f ms"
                  % (refused["msg"], moved["pre_copy_pages"], judged, report["max_pause_ms"]))
            assert watcher.verify().startswith("verify ok"), "the pod's memory must arrive intact"
    finally:
        pods.remove_everywhere(guests, ["lab1", "lab2"])
