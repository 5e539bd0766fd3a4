"""pod_create and pod_info through Ansible: idempotency, check mode, stop/start/remove, exit records."""

from __future__ import annotations

import os
import subprocess

from ansible_collections.autopod.autopod.plugins.module_utils import cgroups, network
from tests.integration.conftest import counter_pod
from tests.support.ansible_cli import module


def test_create_is_idempotent_and_check_mode_touches_nothing(rootfs, bridge, state_dir):
    args = counter_pod("it-life", rootfs, state_dir, "10.213.0.30", mib=1, stop_timeout=5)

    planned = module("pod_create", args, check=True, diff=True)
    assert planned["changed"] and planned["actions"] == ["create pod it-life", "start pod it-life"]
    assert planned["diff"]["before"] == {"state": "absent"} and planned["diff"]["after"]["state"] == "running"
    assert not os.path.exists(state_dir) and not network.identity_exists("it-life")

    first = module("pod_create", args)
    assert first["changed"] and first["pod"]["state"] == "running"
    pid = first["pod"]["init_pid"]
    assert open("/proc/%d/cmdline" % pid).read().split("\0")[0] == "/bin/counter"

    second = module("pod_create", args)
    assert not second["changed"] and second["actions"] == [] and second["pod"]["init_pid"] == pid

    info = module("pod_info", {"state_dir": state_dir})["pods"]
    assert [p["name"] for p in info] == ["it-life"]
    assert info[0]["state"] == "running" and info[0]["address"] == "10.213.0.30/24"
    assert info[0]["resident_memory"] > 1024 * 1024 and info[0]["uptime"] >= 0

    planned_stop = module("pod_create", dict(args, state="stopped"), check=True)
    assert planned_stop["changed"] and os.path.exists("/proc/%d" % pid)

    stopped = module("pod_create", dict(args, state="stopped"))
    assert stopped["changed"] and stopped["pod"]["state"] == "stopped"
    assert stopped["pod"]["last_exit"] is None  # the record belongs to the incarnation that ended
    assert not network.identity_exists("it-life") and not os.path.isdir(cgroups.path("it-life"))
    assert not module("pod_create", dict(args, state="stopped"))["changed"]

    restarted = module("pod_create", args)
    assert restarted["changed"] and restarted["pod"]["generation"] == 2

    removed = module("pod_create", {"name": "it-life", "state": "absent", "state_dir": state_dir,
                                    "stop_timeout": 5})
    assert removed["changed"] and removed["pod"]["state"] == "absent"
    assert not module("pod_create", {"name": "it-life", "state": "absent", "state_dir": state_dir})["changed"]
    assert module("pod_info", {"state_dir": state_dir})["pods"] == []


def test_a_pod_that_exits_is_reported_with_its_status(rootfs, state_dir):
    created = module("pod_create", {"name": "it-exit", "rootfs": rootfs, "state_dir": state_dir,
                                    "command": ["/bin/sh", "-c", "read line < /dev/tty || exit 3"]})
    assert created["changed"], created
    info = module("pod_info", {"name": "it-exit", "state_dir": state_dir})["pods"][0]
    # the shell cannot read /dev/tty (no terminal) and exits 3; its supervisor recorded that
    assert info["state"] == "stopped", info
    assert info["last_exit"]["exit_code"] == 3


def test_pod_without_network_has_only_loopback_and_its_own_hostname(rootfs, state_dir):
    created = module("pod_create", {"name": "it-lo", "rootfs": rootfs, "state_dir": state_dir,
                                    "hostname": "inside", "command": ["/bin/counter", "7001"]})
    pid = created["pod"]["init_pid"]
    assert os.listdir("/proc/%d/root/" % pid)  # a pivoted root we can see into
    links = [line.split(":")[0].strip() for line in open("/proc/%d/net/dev" % pid).readlines()[2:]]
    assert links == ["lo"]
    inside = subprocess.run(["nsenter", "--target", str(pid), "--all", "/bin/busybox", "hostname"],
                            stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    assert inside.strip() == "inside"
    pod_pids = subprocess.run(["nsenter", "--target", str(pid), "--all", "/bin/busybox", "ps", "-o", "pid"],
                              stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.split()
    assert pod_pids[:2] == ["PID", "1"], "the pod's first process is PID 1 of its own PID namespace"
    assert os.readlink("/proc/%d/fd/1" % pid) == "/.autopod/console.log"
    assert sorted(os.listdir("/proc/%d/fd" % pid)) == ["0", "1", "2", "3"]  # 3 is the listening socket


def test_memory_limit_and_bind_mounts(rootfs, state_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello").write_text("from the host\n")
    created = module("pod_create", {"name": "it-mnt", "rootfs": rootfs, "state_dir": state_dir,
                                    "memory_max": "64M", "command": ["/bin/counter", "7002"],
                                    "mounts": [{"source": str(data), "target": "/data", "readonly": True}]})
    pid = created["pod"]["init_pid"]
    assert open("/proc/%d/root/data/hello" % pid).read() == "from the host\n"
    limit_file = "memory.max" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "memory.limit_in_bytes"
    assert open(os.path.join(cgroups.path("it-mnt"), limit_file)).read().strip() == str(64 << 20)
    assert str(pid) in open(os.path.join(cgroups.path("it-mnt"), "cgroup.procs")).read().split()
    mountinfo = open("/proc/%d/mountinfo" % pid).read()
    assert any(line.split()[4] == "/data" and "ro" in line.split()[5].split(",") for line in mountinfo.splitlines())
