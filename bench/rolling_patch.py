"""Benchmark: a rolling patch of the lab, against patching without pods, for fleets of several sizes.

For each size N (--hosts 3,6,12; default 3): a fresh lab of N hosts, a counter pod on each (16 MiB), a
client on the lab's client host reading each pod's stream. A security update that requires a reboot is
published, then:

  Dry run: the same playbook with --check first (it plans and changes nothing); measured: its time, and
           for it and the real run, the tasks' time summed by role (where the time goes).
  AutoPod: `ansible-playbook playbooks/rolling_patch.yml` (serial 1); measured: the run's total time,
           each pod's longest pause as its client saw it (the connection stays open throughout), and per
           host (from the ansible.posix.json callback's task times): its time in the run, the package
           manager's, the reboot's, and the overhead (everything else: evacuating and returning its pod,
           asking what it needs, the locks).
  Mitogen: the same, after another such update, under Mitogen's strategy (mitogen_linear), which keeps one
           Python on each host for the whole run instead of starting one per task.
  Baseline (same run, after another such update): what a user gets without pods, host by host:
           stop the service, upgrade, reboot, start the service again; measured: the service's
           outage, from the stop until a new connection gets its first line, and the total time.

Run as root after scripts/setup.sh:  .venv/bin/python bench/rolling_patch.py [--hosts 3,6,12]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from bench import session  # noqa: E402
from lab import aptrepo, control  # noqa: E402
from lab import topology as topo  # noqa: E402
from tests.lab import pods  # noqa: E402
from tests.support.ansible_cli import mitogen_strategy, module  # noqa: E402

KERNEL = [aptrepo.Package("autopod-demo-kernel", v, "autopod-lab-security", needs_reboot=True)
          for v in ("1.0", "1.1", "1.2", "1.3")]


# The tasks of the role host_patch that are the package manager's work and the reboot's.
PACKAGE_TASKS = ("Install apt's security updates", "Upgrade everything with apt", "Upgrade with dnf",
                 "Upgrade with zypper")
REBOOT_TASKS = ("Reboot and wait for the host to come back",)
# The play that works on each host in turn; the preflight before it runs on every host at once, for the run.
HOST_PLAY = "Rolling patch"


def per_host_times(run: dict, hosts: list) -> dict:
    """Each host's time in the rolling patch's play (from its first task to its last), its package manager's
    and its reboot's."""
    times = {host: {"first": None, "last": None, "packages_s": 0.0, "reboot_s": 0.0} for host in hosts}
    for play in run["plays"]:
        if play["play"]["name"] != HOST_PLAY:
            continue
        for task in play["tasks"]:
            duration = task["task"]["duration"]
            if "end" not in duration:
                continue
            for host in task["hosts"]:
                if host not in times:
                    continue
                record = times[host]
                record["first"] = record["first"] or duration["start"]
                record["last"] = duration["end"]
                if session.task_name(task) in PACKAGE_TASKS:
                    record["packages_s"] += session.task_seconds(task)
                elif session.task_name(task) in REBOOT_TASKS:
                    record["reboot_s"] += session.task_seconds(task)
    result = {}
    for host, record in times.items():
        span = session.seconds_between(record["first"], record["last"]) if record["first"] else 0.0
        result[host] = {"host_s": round(span, 1), "packages_s": round(record["packages_s"], 1),
                        "reboot_s": round(record["reboot_s"], 1),
                        "overhead_s": round(span - record["packages_s"] - record["reboot_s"], 1)}
    return result


def seconds_by_role(run: dict) -> dict:
    """Where a run's time went: its tasks' wall times summed by the role each belongs to (the playbook's own
    tasks under "playbook"). With serial 1 the tasks run one after another, so the sums add up to about the
    run's time."""
    by_role: dict = {}
    for play in run["plays"]:
        for task in play["tasks"]:
            if "end" not in task["task"]["duration"]:
                continue
            name = task["task"]["name"]
            role = name.split(" : ")[0].split(".")[-1] if " : " in name else "playbook"
            by_role[role] = round(by_role.get(role, 0.0) + session.task_seconds(task), 1)
    return by_role


def run_playbook(inventory: str, *options: str, strategy: Optional[dict] = None) -> tuple:
    """rolling_patch.yml on the lab, recorded by the ansible.posix.json callback: its wall time and record;
    `strategy`: the environment of another strategy than Ansible's linear one."""
    started = time.monotonic()
    played = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), *options, "-i", inventory,
                             os.path.join(ROOT, "playbooks", "rolling_patch.yml"),
                             "-e", json.dumps({"autopod_report_dir": "/tmp/autopod-bench-reports"})],
                            cwd=ROOT, env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
                                               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", **(strategy or {})),
                            stdout=subprocess.PIPE, text=True, check=True)
    return round(time.monotonic() - started, 1), json.loads(played.stdout)


def dry_run(inventory: str) -> dict:
    """`--check`: the plan, nothing changed; its wall time and where it went."""
    total, run = run_playbook(inventory, "--check")
    return {"total_s": total, "by_role_s": seconds_by_role(run)}


def rolling_patch(inventory: str, hosts: list, strategy: Optional[dict] = None) -> dict:
    watchers = {host: pods.client(30 + i) for i, host in enumerate(hosts)}
    for watcher in watchers.values():
        watcher.wait_lines(10)
        watcher.reset_pause_clock()
    total, run = run_playbook(inventory, strategy=strategy)
    per_host = per_host_times(run, hosts)
    pauses = {}
    for host, watcher in watchers.items():
        watcher.wait_lines(10)
        report = watcher.report()
        assert not report["gaps"] and not report["error"], report
        pauses["bench-%s" % host] = report["max_pause_ms"]
        watcher.close()
    return {"total_s": total, "longest_pause_ms": pauses, "per_host": per_host, "by_role_s": seconds_by_role(run)}


def first_line_after(offset: int, deadline_s: float = 120) -> float:
    """Time until a new connection to pod_ip(offset) gets its first line."""
    started = time.monotonic()
    watcher = pods.client(offset)
    watcher.sock.settimeout(None)
    watcher.wait_lines(1, timeout=deadline_s)
    watcher.close()
    return time.monotonic() - started


def baseline(inventory: str, hosts: list) -> dict:
    outages, started = {}, time.monotonic()
    for index, host in enumerate(hosts):
        name, offset = "bench-%s" % host, 30 + index
        stopped_at = time.monotonic()
        module("pod_create", {"name": name, "state": "stopped", "stop_timeout": 10}, host=host, inventory=inventory)
        pods.shell(inventory, host, "apt-get update -q && apt-get dist-upgrade -y -q")
        control.reboot(host)
        module("pod_create", {"name": name, "state": "started"}, host=host, inventory=inventory)
        first_line_after(offset)
        outages[name] = round((time.monotonic() - stopped_at) * 1000)
    return {"total_s": round(time.monotonic() - started, 1), "outage_ms": outages}


def one_size(count: int, results: dict, measured: session.Results) -> None:
    hosts = [topo.host_name(index) for index in range(1, count + 1)]
    inventory = session.lab_up(count)
    pods.base_rootfs()
    aptrepo.publish(topo.repo_dir(), KERNEL[:1])
    for index, host in enumerate(hosts):
        pods.shell(inventory, host, "apt-get update -q && apt-get install -y -q autopod-demo-kernel=1.0 "
                                    "&& rm -f /var/run/reboot-required*")
        pods.place(inventory, host, "bench-%s" % host, 30 + index, mib=16)
    aptrepo.publish(topo.repo_dir(), KERNEL[:2])
    results["dry_run"] = dry_run(inventory)
    measured.add("dry run (--check), %d hosts" % count, results["dry_run"])
    results["autopod"] = rolling_patch(inventory, hosts)
    measured.add("autopod, %d hosts" % count, results["autopod"])
    aptrepo.publish(topo.repo_dir(), KERNEL[:3])
    results["mitogen"] = rolling_patch(inventory, hosts, mitogen_strategy())
    measured.add("autopod under Mitogen, %d hosts" % count, results["mitogen"])
    aptrepo.publish(topo.repo_dir(), KERNEL)
    results["without_pods"] = baseline(inventory, hosts)
    measured.add("without pods, %d hosts" % count, results["without_pods"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="3", help="fleet sizes, comma-separated (default 3)")
    sizes = [int(size) for size in parser.parse_args().hosts.split(",")]
    results = {"machine": {"kernel": os.uname().release, "cpus": os.cpu_count()}, "sizes": {}}
    with session.measuring("rolling_patch", session.lab_cleanup) as measured:
        try:
            for count in sizes:
                results["sizes"][count] = {}
                one_size(count, results["sizes"][count], measured)
        finally:
            print_table(results)
            print(json.dumps(results, indent=1))
    return measured.exit_code


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def _rollout_cells(rollout: Optional[dict]) -> list:
    """A rolling patch's total, its mean host (packages, reboot, overhead) and its longest pause; dashes if it
    was not measured."""
    if not rollout:
        return ["-", "-", "-"]
    per_host = rollout["per_host"].values()
    means = [_mean(h[k] for h in per_host) for k in ("host_s", "packages_s", "reboot_s", "overhead_s")]
    return ["%.0f" % rollout["total_s"], "%.1f (%.1f, %.1f, %.1f)" % tuple(means),
            "%.0f" % max(rollout["longest_pause_ms"].values())]


def print_table(results: dict) -> None:
    print("| hosts | AutoPod total s (linear) | per host s (packages, reboot, overhead) | longest pause ms "
          "| under Mitogen: total s | per host s | longest pause ms "
          "| dry run (--check) s | without pods: total s | longest outage ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for count, size in results["sizes"].items():
        row = ["%d" % count]
        for run in ("autopod", "mitogen"):
            row += _rollout_cells(size.get(run))
        row.append("%.0f" % size["dry_run"]["total_s"] if "dry_run" in size else "-")
        without = size.get("without_pods")
        row += (["%.0f" % without["total_s"], "%.0f" % max(without["outage_ms"].values())] if without else ["-", "-"])
        print("| " + " | ".join(row) + " |")
    for count, size in results["sizes"].items():
        for run in ("dry_run", "autopod", "mitogen"):
            if run in size:
                print("%d hosts, %s: seconds by role %s" % (count, run, size[run]["by_role_s"]))


if __name__ == "__main__":
    sys.exit(main())
