"""The demo: a rolling patch of three lab hosts while their services keep serving.

On the lab (three machine-like hosts reached over SSH, scripts/lab), each host has a package from the
lab's own apt repository that has a security update whose installation requires a reboot, as a
kernel update does. Pods run on the hosts: Redis (Debian's redis-server, in a root filesystem built
with debootstrap), with a client that writes to it throughout and afterwards reads back every
acknowledged write; and two counter pods streaming numbered lines to clients that count every gap.
Then `ansible-playbook playbooks/rolling_patch.yml` runs over SSH, exactly as against real hosts.
It ends with the run's summary and what the clients saw.

    sudo scripts/demo.sh            # leaves nothing behind
    sudo scripts/demo.sh --keep     # leaves the lab up (scripts/lab down removes it)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from lab import aptrepo, control  # noqa: E402
from lab import topology as topo  # noqa: E402
from tests.lab import pods  # noqa: E402
from tests.support.ansible_cli import module  # noqa: E402
from tests.support.cleanup import adopt_orphans, reap_orphans  # noqa: E402
from workloads.redis_client import RedisWriter  # noqa: E402
from workloads.rootfs import build_debian_rootfs  # noqa: E402

HOSTS = ["lab1", "lab2", "lab3"]
REDIS_CACHE = "/var/cache/autopod-demo/redis-rootfs"
REPORTS = "/tmp/autopod-demo-reports"
KERNEL = [aptrepo.Package("autopod-demo-kernel", v, "autopod-lab-security", needs_reboot=True) for v in ("1.0", "1.1")]
APP = [aptrepo.Package("autopod-demo-app", v, "autopod-lab") for v in ("1.0", "1.1")]


def say(text: str) -> None:
    print("\n== %s" % text, flush=True)


def prepare_hosts(inventory: str) -> None:
    aptrepo.publish(topo.repo_dir(), [KERNEL[0], APP[0]])
    for host in HOSTS:
        pods.shell(inventory, host, "apt-get update -q && apt-get install -y -q autopod-demo-kernel=1.0 "
                                    "autopod-demo-app=1.0 && rm -f /var/run/reboot-required*")
    aptrepo.publish(topo.repo_dir(), KERNEL + APP)


def start_redis(inventory: str) -> None:
    shared = os.path.join(topo.shared_source(), "redis-rootfs")
    shutil.rmtree(shared, ignore_errors=True)
    # cp -a, not shutil.copytree: a debootstrap root has device nodes, which copytree would read from
    subprocess.run(["cp", "-a", build_debian_rootfs(REDIS_CACHE, "redis-server"), shared], check=True)
    rootfs = os.path.join(pods.PODS_DIR, "redis")
    pods.shell(inventory, "lab1", "mkdir -p %s && cp -a %s/redis-rootfs %s" % (pods.PODS_DIR, topo.SHARED_DIR, rootfs))
    created = module("pod_create", {
        "name": "redis", "rootfs": rootfs, "memory_max": "512M",
        "command": ["/usr/bin/redis-server", "--bind", "0.0.0.0", "--port", "6379", "--protected-mode", "no",
                    "--save", "", "--appendonly", "no", "--dir", "/tmp"],
        "network": {"address": "%s/%d" % (topo.pod_ip(50), topo.PREFIXLEN), "bridge": topo.HOST_BRIDGE}},
        host="lab1", inventory=inventory)
    assert created.get("changed"), created


def main() -> int:
    keep = "--keep" in sys.argv
    adopt_orphans()
    say("building the lab: three hosts with their own root, PID and network namespaces and sshd")
    control.down()
    inventory = control.up(len(HOSTS))
    print(open(inventory).read())
    watchers, writer = {}, None
    try:
        say("installing autopod-demo-kernel 1.0 on every host, then publishing 1.1 (a security update "
            "that requires a reboot)")
        prepare_hosts(inventory)
        say("starting pods: redis on lab1, counters on lab2 and lab3, and their clients")
        start_redis(inventory)
        pods.place(inventory, "lab2", "stream", 51, mib=64)
        pods.place(inventory, "lab3", "stream2", 52, mib=16)
        client_netns = topo.netns_path(topo.CLIENT_NETNS)
        writer = RedisWriter(topo.pod_ip(50), netns_path=client_netns).start()
        watchers = {"stream": pods.client(51), "stream2": pods.client(52)}
        for watcher in watchers.values():
            watcher.wait_lines(20)

        say("ansible-playbook playbooks/rolling_patch.yml")
        started = time.monotonic()
        run = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", inventory,
                              os.path.join(ROOT, "playbooks", "rolling_patch.yml"),
                              "-e", json.dumps({"autopod_report_dir": REPORTS})],
                             cwd=ROOT, env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")),
                             check=False)
        total = time.monotonic() - started

        say("what the clients saw")
        writer.stop()
        lost = writer.lost()
        redis = writer.report()
        print("redis: %d acknowledged writes, %d lost, connection error: %s, slowest write %.0f ms"
              % (redis["acknowledged_writes"], len(lost), redis["error"] or "none", redis["slowest_write_ms"]))
        streams_ok = True
        for name, watcher in watchers.items():
            watcher.wait_lines(10)
            report = watcher.report()
            verdict = watcher.verify()
            streams_ok &= not report["gaps"] and not report["repeats"] and not report["error"] \
                and verdict.startswith("verify ok")
            print("%s: %d lines, gaps %d, repeats %d, resets %s, longest pause %.0f ms, memory %s"
                  % (name, report["lines"], len(report["gaps"]), len(report["repeats"]), report["error"] or "none",
                     report["max_pause_ms"], verdict))
        print("rolling patch of %d hosts took %.0f s" % (len(HOSTS), total))
        ok = run.returncode == 0 and not lost and not redis["error"] and streams_ok
        print("\nRESULT: %s" % ("every host patched and rebooted; zero resets, zero lost writes"
                                if ok else "FAILED (see above)"))
        return 0 if ok else 1
    finally:
        if writer:
            writer.close()
        for watcher in watchers.values():
            watcher.close()
        if not keep:
            pods.remove_everywhere(inventory, HOSTS)
            control.down()
        reap_orphans()


if __name__ == "__main__":
    sys.exit(main())
