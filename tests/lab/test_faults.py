"""The fault matrix: whatever fails during a move, the pod runs afterwards on exactly one host, and the
result says where (and, for a post-copied pod rolled back, how long it had run elsewhere).

Faults are real: a lab host rebooted (everything on it killed, as a crash does), a host cut off the lab
switch (its packets dropped, none refused), a full image directory, CRIU killed, the controller killed,
strangers on the receiver's port. Each fault is injected at a phase the receiver's log names.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.migration.credentials import Credentials
from lab import control
from lab import topology as topo
from tests.lab import pods
from tests.support.ansible_cli import ROOT
from workloads.stream_client import connect

HOSTS = ["lab1", "lab2"]


def _in_host(host: str, path: str) -> str:
    """A path inside a lab host, as the machine sees it."""
    with open(os.path.join(topo.host_dir(host), "init.json")) as handle:
        return "/proc/%d/root%s" % (json.load(handle)["init_pid"], path)


def wait_for_phase(host: str, pod: str, marker: str, timeout: float = 60) -> None:
    """Wait until the receiver for `pod` on `host` logs `marker` (protocol phases, see receiver.py)."""
    log = _in_host(host, "%s/incoming/%s.log" % (pods.IMAGES, pod))
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        try:
            with open(log) as handle:
                if marker in handle.read():
                    return
        except OSError:
            pass
        pause.wait(0.01)
    raise TimeoutError("the receiver of %s on %s never logged %r" % (pod, host, marker))


class Move:
    """pod_receive now, pod_migrate in a thread, so that a fault can strike while it runs."""

    def __init__(self, lab, name, source, destination, **migrate_args) -> None:
        credentials = pods.credentials()
        self.receiver = pods.receive(lab, name, source, destination, credentials)
        assert self.receiver.get("changed"), self.receiver
        self.result = None
        self.thread = threading.Thread(target=self._run, args=(lab, name, source, credentials, migrate_args))
        self.thread.start()

    def _run(self, lab, name, source, credentials, migrate_args) -> None:
        self.result = pods.migrate(lab, name, source, self.receiver, credentials, **migrate_args)

    def finish(self, timeout: float = 180) -> dict:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "pod_migrate did not finish"
        return self.result


def served(watcher, lines=30) -> dict:
    """The client is still served, on its connection, without gaps, and the pod's memory is intact."""
    watcher.wait_lines(lines, timeout=60)
    report = watcher.report()
    assert report["error"] is None and not report["closed_by_peer"], report
    assert report["gaps"] == [] and report["repeats"] == [], report
    assert watcher.verify().startswith("verify ok")
    return report


def runs_only_on(lab, name, host) -> None:
    assert pods.running_on(lab, name, HOSTS) == [host]


def test_the_destination_dies_before_the_dump(lab, clean):
    with pods.watched(lab, "lab1", "ft-early", 10) as watcher:
        credentials = pods.credentials()
        receiver = pods.receive(lab, "ft-early", "lab1", "lab2", credentials)
        control.reboot("lab2")
        failed = pods.migrate(lab, "ft-early", "lab1", receiver, credentials)
        assert failed["failed"] and failed["result"] == "not_moved" and failed["runs_on"] == "source", failed
        runs_only_on(lab, "ft-early", "lab1")
        served(watcher)


def test_the_destination_dies_during_the_rootfs_sync(lab, clean):
    with pods.watched(lab, "lab1", "ft-rootfs", 11) as watcher:
        pods.shell(lab, "lab1", "head -c 400M /dev/urandom > %s/ft-rootfs/big" % pods.PODS_DIR)
        move = Move(lab, "ft-rootfs", "lab1", "lab2")
        wait_for_phase("lab2", "ft-rootfs", "rootfs: receiving")
        control.reboot("lab2", wait=False)
        failed = move.finish()
        assert failed["failed"] and failed["runs_on"] == "source", failed
        runs_only_on(lab, "ft-rootfs", "lab1")
        served(watcher)


def test_the_destination_dies_while_the_pages_stream(lab, clean):
    with pods.watched(lab, "lab1", "ft-pages", 12, mib=512) as watcher:
        move = Move(lab, "ft-pages", "lab1", "lab2", strategy="stop-and-copy")
        wait_for_phase("lab2", "ft-pages", "pages: page stream 0")
        control.reboot("lab2", wait=False)
        failed = move.finish()
        assert failed["failed"] and failed["result"] == "not_moved" and failed["runs_on"] == "source", failed
        runs_only_on(lab, "ft-pages", "lab1")
        served(watcher)


def test_the_destination_dies_after_a_post_copied_pod_resumed_there(lab, clean):
    with pods.watched(lab, "lab1", "ft-post", 13, mib=512):
        move = Move(lab, "ft-post", "lab1", "lab2", strategy="post-copy")
        wait_for_phase("lab2", "ft-post", "running:")
        control.reboot("lab2", wait=False)
        failed = move.finish()
        assert failed["failed"] and failed["result"] == "rolled_back" and failed["runs_on"] == "source", failed
        assert failed["lost_ms"] >= 0 and "rolled back: the pod ran on" in failed["msg"]
        runs_only_on(lab, "ft-post", "lab1")
        fresh = pods.client(13)  # the pod runs here again from its freeze; a new client checks its memory
        try:
            served(fresh, 10)
        finally:
            fresh.close()


def test_the_source_dies_after_a_post_copied_pod_resumed_elsewhere(lab, clean):
    """Inherent to post-copy: the pod's memory was still on the source. The destination must end its copy
    quickly and say so, never hang and never run on with missing memory."""
    pods.place(lab, "lab1", "ft-src", 14, mib=512)
    move = Move(lab, "ft-src", "lab1", "lab2", strategy="post-copy")
    wait_for_phase("lab2", "ft-src", "running:")
    control.reboot("lab1", wait=False)
    wait_for_phase("lab2", "ft-src", "its copy here was killed", timeout=30)
    move.finish()
    assert pods.running_on(lab, "ft-src", ["lab2"]) == []


def test_a_partition_before_the_freeze_leaves_the_pod_untouched(lab, clean):
    with pods.watched(lab, "lab1", "ft-part1", 15) as watcher:
        pods.shell(lab, "lab1", "head -c 400M /dev/urandom > %s/ft-part1/big" % pods.PODS_DIR)
        move = Move(lab, "ft-part1", "lab1", "lab2")
        wait_for_phase("lab2", "ft-part1", "rootfs: receiving")
        control.partition("lab2")
        failed = move.finish()
        control.heal("lab2")
        assert failed["failed"] and failed["result"] == "not_moved" and failed["runs_on"] == "source", failed
        runs_only_on(lab, "ft-part1", "lab1")
        served(watcher)


def test_a_partition_while_frozen_costs_at_most_max_freeze(lab, clean):
    with pods.watched(lab, "lab1", "ft-part2", 16, mib=512) as watcher:
        watcher.reset_pause_clock()
        move = Move(lab, "ft-part2", "lab1", "lab2", strategy="stop-and-copy", max_freeze=8)
        wait_for_phase("lab2", "ft-part2", "pages: page stream 0")
        control.partition("lab2")
        failed = move.finish()
        control.heal("lab2")
        assert failed["failed"] and failed["result"] == "not_moved" and failed["runs_on"] == "source", failed
        report = served(watcher)
        assert report["max_pause_ms"] < (8 + 3) * 1000, "the freeze is bounded by max_freeze"
        runs_only_on(lab, "ft-part2", "lab1")


def test_a_partition_after_a_post_copied_pod_resumed_rolls_it_back(lab, clean):
    pods.place(lab, "lab1", "ft-part3", 17, mib=512)
    move = Move(lab, "ft-part3", "lab1", "lab2", strategy="post-copy")
    wait_for_phase("lab2", "ft-part3", "running:")
    control.partition("lab2")
    failed = move.finish()
    assert failed["failed"] and failed["result"] == "rolled_back" and failed["runs_on"] == "source", failed
    wait_for_phase("lab2", "ft-part3", "its copy here was killed", timeout=30)
    control.heal("lab2")
    runs_only_on(lab, "ft-part3", "lab1")
    fresh = pods.client(17)
    try:
        served(fresh, 10)
    finally:
        fresh.close()


def test_a_full_image_directory_on_the_destination(lab, clean):
    incoming = "%s/incoming" % pods.IMAGES
    pods.shell(lab, "lab2", "mkdir -p %s && mount -t tmpfs -o size=16m tmpfs %s" % (incoming, incoming))
    with pods.watched(lab, "lab1", "ft-full", 18, mib=64) as watcher:
        try:
            failed = pods.move(lab, "ft-full", "lab1", "lab2", strategy="stop-and-copy")
            assert failed["failed"] and failed["runs_on"] == "source", failed
            runs_only_on(lab, "ft-full", "lab1")
            served(watcher)
        finally:
            pods.shell(lab, "lab2", "umount %s" % incoming)


def kill_criu_dump(host: str, pod: str, timeout: float = 10) -> None:
    """SIGKILL the `criu dump` of pod's move once it transfers pages (its log says so), from the machine,
    which sees every lab host's processes."""
    log = _in_host(host, "/var/lib/autopod/work/%s.move/dump.log" % pod)
    marker = ("outgoing/%s" % pod).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(log) as handle:
                if "Transferring pages" not in handle.read():
                    continue
        except OSError:
            continue
        for entry in os.listdir("/proc"):
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as handle:
                    argv = handle.read().split(b"\0")
            except OSError:
                continue
            if b"dump" in argv and marker in b" ".join(argv) and any(a.endswith(b"/criu") for a in argv):
                os.kill(int(entry), signal.SIGKILL)
                return
    raise TimeoutError("no criu dump of %s appeared" % pod)


def test_criu_killed_in_the_middle_of_a_dump(lab, clean):
    with pods.watched(lab, "lab1", "ft-kill", 19, mib=1024) as watcher:
        move = Move(lab, "ft-kill", "lab1", "lab2", strategy="stop-and-copy")
        kill_criu_dump("lab1", "ft-kill")
        failed = move.finish()
        assert failed["failed"] and failed["result"] == "not_moved" and failed["runs_on"] == "source", failed
        assert "killed" in failed["msg"] and "revived" in failed["msg"], failed["msg"]
        runs_only_on(lab, "ft-kill", "lab1")
        served(watcher)


def test_the_controller_killed_mid_move_then_a_rerun_converges(lab, clean):
    playbook = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", lab,
                os.path.join(ROOT, "playbooks", "move_pod.yml"),
                "-e", json.dumps({"pod": "ft-ctl", "from": "lab1", "to": "lab2", "image_dir": pods.IMAGES,
                                  "criu_path": pods.CRIU})]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    with pods.watched(lab, "lab1", "ft-ctl", 20, mib=256) as watcher:
        run = subprocess.Popen(playbook, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_phase("lab2", "ft-ctl", "pages:")
        run.send_signal(signal.SIGKILL)
        run.wait()
        wait_for_phase("lab2", "ft-ctl", "receiver done", timeout=60)  # the move finished without its controller
        again = subprocess.run(playbook, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True, check=False)
        assert again.returncode == 0 and "ft-ctl already runs on lab2: nothing to do" in again.stdout, again.stdout
        runs_only_on(lab, "ft-ctl", "lab2")
        served(watcher)


def test_strangers_on_the_receivers_port_do_not_stop_the_move(lab, clean):
    strangers = []
    with pods.watched(lab, "lab1", "ft-stray", 21) as watcher:
        try:
            credentials = pods.credentials()
            receiver = pods.receive(lab, "ft-stray", "lab1", "lab2", credentials)
            client_ns = topo.netns_path(topo.CLIENT_NETNS)
            address, port = receiver["address"], receiver["port"]
            for port_seen in range(port - 3, port + 4):  # a port scan over the receiver's neighbourhood
                try:
                    connect(address, port_seen, client_ns, 0.5).close()
                except OSError:
                    pass
            idle = connect(address, port, client_ns, 5)  # connects and says nothing
            garbage = connect(address, port, client_ns, 5)
            garbage.sendall(b"\x00\x00\x00\x05hello")
            impostor = connect(address, port, client_ns, 5)
            hello = json.dumps({"type": "hello", "token": "0" * 32, "pod": "ft-stray", "stream": "control"}).encode()
            impostor.sendall(len(hello).to_bytes(4, "big") + hello)
            strangers += [idle, garbage, impostor]
            with pytest.raises(AutopodError, match="TLS handshake failed"):  # a peer with another move's credentials
                Credentials(**pods.credentials()).secure(connect(address, port, client_ns, 5), False, 5)
            moved = pods.migrate(lab, "ft-stray", "lab1", receiver, credentials)
            assert moved.get("changed") and moved["result"] == "moved", moved
            runs_only_on(lab, "ft-stray", "lab2")
            served(watcher)
        finally:
            for sock in strangers:
                sock.close()


def test_a_source_with_other_credentials_is_refused_and_the_pod_runs_on(lab, clean):
    with pods.watched(lab, "lab1", "ft-wrong", 23) as watcher:
        receiver = pods.receive(lab, "ft-wrong", "lab1", "lab2", pods.credentials(), timeout=20)
        refused = pods.migrate(lab, "ft-wrong", "lab1", receiver, pods.credentials())
        assert refused["failed"] and refused["result"] == "not_moved" and refused["runs_on"] == "source", refused
        assert "TLS handshake failed" in refused["msg"], refused["msg"]
        runs_only_on(lab, "ft-wrong", "lab1")
        served(watcher)


def test_an_abandoned_receiver_never_harms_a_later_move(lab, clean):
    with pods.watched(lab, "lab1", "ft-old", 22) as watcher:
        abandoned = pods.receive(lab, "ft-old", "lab1", "lab2", pods.credentials(), timeout=15)
        assert abandoned.get("changed"), abandoned
        moved = pods.move(lab, "ft-old", "lab1", "lab2")  # a later run, with its own receiver
        assert moved.get("changed") and moved["result"] == "moved", moved
        time.sleep(17)  # past the abandoned receiver's timeout: it must not have taken anything down
        runs_only_on(lab, "ft-old", "lab2")
        served(watcher)


def test_opposite_moves_at_the_same_time_both_finish(lab, clean):
    pods.place(lab, "lab1", "ft-east", 23)
    pods.place(lab, "lab2", "ft-west", 24)
    watchers = [pods.client(23), pods.client(24)]
    results = {}
    try:
        for watcher in watchers:
            watcher.wait_lines(10)
        moves = [threading.Thread(target=lambda n=n, s=s, d=d: results.update({n: pods.move(lab, n, s, d)}))
                 for n, s, d in (("ft-east", "lab1", "lab2"), ("ft-west", "lab2", "lab1"))]
        for thread in moves:
            thread.start()
        for thread in moves:
            thread.join(180)
        assert all(r.get("changed") and r["result"] == "moved" for r in results.values()), results
        runs_only_on(lab, "ft-east", "lab2")
        runs_only_on(lab, "ft-west", "lab1")
        for watcher in watchers:
            served(watcher)
    finally:
        for watcher in watchers:
            watcher.close()
