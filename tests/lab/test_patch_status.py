"""patch_status for real: apt on a lab host against the lab's local repository, over SSH.

The lab host's apt uses only the lab repository and its own lists (lab/aptrepo.py), so nothing here
depends on, or changes, the machine's sources or package lists.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from lab import aptrepo, control
from lab import host as lab_host
from lab import topology as topo
from tests.support.ansible_cli import module

APP_1, APP_2 = aptrepo.Package("autopod-demo-app", "1.0", "autopod-lab"), aptrepo.Package("autopod-demo-app", "1.1", "autopod-lab")
KERNEL_1 = aptrepo.Package("autopod-demo-kernel", "1.0", "autopod-lab-security", needs_reboot=True)
KERNEL_2 = aptrepo.Package("autopod-demo-kernel", "1.1", "autopod-lab-security", needs_reboot=True)
HOST = "lab3"


def status(lab, **args):
    return module("patch_status", args, host=HOST, inventory=lab)


def shell(lab, command):
    result = module("ansible.builtin.shell", {"_raw_params": command}, host=HOST, inventory=lab)
    assert result.get("rc") == 0, result
    return result


@pytest.fixture
def installed_old_versions(lab):
    """lab3 with 1.0 of both packages installed from the lab repository, and 1.1 published."""
    aptrepo.publish(topo.repo_dir(), [APP_1, KERNEL_1])
    shell(lab, "apt-get update -q && apt-get install -y -q autopod-demo-app autopod-demo-kernel "
               "&& rm -f /var/run/reboot-required /var/run/reboot-required.pkgs")
    aptrepo.publish(topo.repo_dir(), [APP_1, KERNEL_1, APP_2, KERNEL_2])
    yield
    shell(lab, "apt-get purge -y -q autopod-demo-app autopod-demo-kernel; rm -f /var/run/reboot-required*")
    aptrepo.publish(topo.repo_dir(), [])


def test_pending_updates_reboot_signals_and_policies(lab, installed_old_versions):
    refreshed = status(lab, refresh=True)
    assert refreshed["changed"] is True, "a refresh is the one thing reported as a change"
    before = status(lab)
    assert before["changed"] is False and before["partial"] is False and before["package_manager"] == "apt"
    by_name = {u["name"]: u for u in before["updates"]}
    assert set(by_name) == {"autopod-demo-app", "autopod-demo-kernel"}
    assert by_name["autopod-demo-kernel"] == {"name": "autopod-demo-kernel", "installed": "1.0", "candidate": "1.1",
                                              "arch": "all", "security": True, "source": "autopod-lab-security",
                                              "advisory": None}
    assert by_name["autopod-demo-app"]["security"] is False
    assert (before["updates_count"], before["security_count"]) == (2, 1)
    assert before["reboot_required"] is False and before["reboot_reasons"] == []
    assert before["needs_patching"] is True
    assert status(lab, policy="reboot")["needs_patching"] is False
    assert status(lab, policy="all")["needs_patching"] is True
    skipped = status(lab, exclude=["autopod-demo-k*"])
    assert skipped["excluded"] == ["autopod-demo-kernel"] and skipped["security_count"] == 0
    assert skipped["needs_patching"] is False
    assert before["running_kernel"] == os.uname().release
    assert before["checked_at"].endswith("Z") and before["duration_ms"] > 0

    shell(lab, "apt-get dist-upgrade -y -q")
    after = status(lab, fact_path="/etc/ansible/facts.d/autopod_patch.fact")
    assert after["updates"] == [] and after["updates_count"] == 0
    assert after["reboot_required"] is True
    assert after["reboot_reasons"] == ["/var/run/reboot-required exists (packages: autopod-demo-kernel)"]
    assert after["needs_patching"] is True and status(lab, policy="reboot")["needs_patching"] is True
    fact = json.loads(shell(lab, "cat /etc/ansible/facts.d/autopod_patch.fact")["stdout"])
    assert fact["reboot_required"] is True and "changed" not in fact
    facts = module("ansible.builtin.setup", {"filter": "ansible_local"}, host=HOST, inventory=lab)
    assert facts["ansible_facts"]["ansible_local"]["autopod_patch"]["reboot_required"] is True

    control.reboot(HOST)  # /var/run is a tmpfs: the signal goes with the reboot, as on Debian
    rebooted = status(lab)
    assert rebooted["reboot_required"] is False and rebooted["needs_patching"] is False


def test_check_mode_neither_refreshes_nor_writes(lab):
    lists = "ls -l --time-style=full-iso /var/lib/apt/autopod-lab-lists"
    before = shell(lab, lists)["stdout"]
    planned = module("patch_status", {"refresh": True, "fact_path": "/etc/ansible/facts.d/check.fact"},
                     host=HOST, inventory=lab, check=True)
    assert planned["changed"] is True, "check mode predicts the refresh as a change"
    assert planned["partial"] is False
    assert shell(lab, lists)["stdout"] == before, "but does not refresh"
    gone = module("ansible.builtin.stat", {"path": "/etc/ansible/facts.d/check.fact"}, host=HOST, inventory=lab)
    assert gone["stat"]["exists"] is False


HOLD_LOCK = ("import fcntl, os, sys\n"
             "lock = open('/var/lib/dpkg/lock-frontend', 'a')\n"
             "fcntl.lockf(lock, fcntl.LOCK_EX)\n"  # what apt and dpkg hold while they work
             "print(os.getpid(), flush=True)\n"
             "sys.stdin.read()\n")


def test_a_locked_database_is_a_partial_result_or_an_error(lab):
    holder = subprocess.Popen(["nsenter", "--target", str(lab_host.init_pid(HOST)), "--all", topo.python(), "-c",
                               HOLD_LOCK], stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True)
    try:
        pid_in_host = int(holder.stdout.readline())  # printed once the lock is held
        held = status(lab)
        refresh = status(lab, refresh=True)
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert held["partial"] is True and held["updates"] is None and held["needs_patching"] is None
    assert "locked by PID %d (python" % pid_in_host in held["unknown"]["updates"], held["unknown"]
    assert refresh["failed"] and "package database is locked by PID %d" % pid_in_host in refresh["msg"]
    assert status(lab)["partial"] is False


def test_refusals(lab):
    missing = status(lab, backend="dnf")
    assert missing["failed"] and "backend dnf was asked for, but its tools are not installed" in missing["msg"]
    os.rename(topo.repo_dir(), topo.repo_dir() + ".away")  # the mirror is gone
    try:
        broken = status(lab, refresh=True)
    finally:
        os.rename(topo.repo_dir() + ".away", topo.repo_dir())
    assert broken["failed"] and "the apt package cache could not be refreshed" in broken["msg"], broken
