"""Benchmark: a rolling patch of the lab, against patching without pods.

Three lab hosts, a counter pod on each (16 MiB), a client on the lab's client host reading each
pod's stream. A security update that requires a reboot is published, then:

  AutoPod: `ansible-playbook playbooks/rolling_patch.yml`; measured: the run's total time and each
           pod's longest pause as its client saw it (the connection stays open throughout).
  Baseline (same run, after another such update): what a user gets without pods, host by host:
           stop the service, upgrade, reboot, start the service again; measured: the service's
           outage, from the stop until a new connection gets its first line, and the total time.

Run as root after scripts/setup.sh:  .venv/bin/python bench/rolling_patch.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from bench import session  # noqa: E402
from lab import aptrepo, control  # noqa: E402
from lab import topology as topo  # noqa: E402
from tests.lab import pods  # noqa: E402
from tests.support.ansible_cli import module  # noqa: E402

HOSTS = ["lab1", "lab2", "lab3"]
KERNEL = [aptrepo.Package("autopod-demo-kernel", v, "autopod-lab-security", needs_reboot=True)
          for v in ("1.0", "1.1", "1.2")]


def rolling_patch(inventory: str) -> dict:
    watchers = {host: pods.client(30 + i) for i, host in enumerate(HOSTS)}
    for watcher in watchers.values():
        watcher.wait_lines(10)
        watcher.reset_pause_clock()
    started = time.monotonic()
    subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", inventory,
                    os.path.join(ROOT, "playbooks", "rolling_patch.yml"),
                    "-e", json.dumps({"autopod_report_dir": "/tmp/autopod-bench-reports"})],
                   cwd=ROOT, env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")),
                   stdout=subprocess.DEVNULL, check=True)
    total = time.monotonic() - started
    pauses = {}
    for host, watcher in watchers.items():
        watcher.wait_lines(10)
        report = watcher.report()
        assert not report["gaps"] and not report["error"], report
        pauses["bench-%s" % host] = report["max_pause_ms"]
        watcher.close()
    return {"total_s": round(total, 1), "longest_pause_ms": pauses}


def first_line_after(offset: int, deadline_s: float = 120) -> float:
    """Time until a new connection to pod_ip(offset) gets its first line."""
    started = time.monotonic()
    watcher = pods.client(offset)
    watcher.sock.settimeout(None)
    watcher.wait_lines(1, timeout=deadline_s)
    watcher.close()
    return time.monotonic() - started


def baseline(inventory: str) -> dict:
    outages, started = {}, time.monotonic()
    for index, host in enumerate(HOSTS):
        name, offset = "bench-%s" % host, 30 + index
        stopped_at = time.monotonic()
        module("pod_create", {"name": name, "state": "stopped", "stop_timeout": 10}, host=host, inventory=inventory)
        pods.shell(inventory, host, "apt-get update -q && apt-get dist-upgrade -y -q")
        control.reboot(host)
        module("pod_create", {"name": name, "state": "started"}, host=host, inventory=inventory)
        first_line_after(offset)
        outages[name] = round((time.monotonic() - stopped_at) * 1000)
    return {"total_s": round(time.monotonic() - started, 1), "outage_ms": outages}


def main() -> int:
    results = {"machine": {"kernel": os.uname().release, "cpus": os.cpu_count(), "lab_hosts": len(HOSTS)}}
    with session.measuring("rolling_patch", session.lab_cleanup) as measured:
        try:
            inventory = session.lab_up(len(HOSTS))
            pods.base_rootfs()
            aptrepo.publish(topo.repo_dir(), KERNEL[:1])
            for index, host in enumerate(HOSTS):
                pods.shell(inventory, host, "apt-get update -q && apt-get install -y -q autopod-demo-kernel=1.0 "
                                            "&& rm -f /var/run/reboot-required*")
                pods.place(inventory, host, "bench-%s" % host, 30 + index, mib=16)
            aptrepo.publish(topo.repo_dir(), KERNEL[:2])
            results["autopod"] = rolling_patch(inventory)
            measured.add("autopod", results["autopod"])
            aptrepo.publish(topo.repo_dir(), KERNEL)
            results["without_pods"] = baseline(inventory)
            measured.add("without pods", results["without_pods"])
        finally:
            print_table(results)
            print(json.dumps(results, indent=1))
    return measured.exit_code


def print_table(results: dict) -> None:
    print("| | total s | per service: longest interruption ms |")
    print("|---|---|---|")
    if "autopod" in results:
        print("| AutoPod rolling_patch.yml (pods move, connections stay open) | %.0f | %s |"
              % (results["autopod"]["total_s"],
                 ", ".join("%.0f" % v for v in results["autopod"]["longest_pause_ms"].values())))
    if "without_pods" in results:
        print("| without pods: stop, upgrade, reboot, start (outage until it answers) | %.0f | %s |"
              % (results["without_pods"]["total_s"],
                 ", ".join("%.0f" % v for v in results["without_pods"]["outage_ms"].values())))


if __name__ == "__main__":
    sys.exit(main())
