"""playbooks/rolling_patch.yml on three lab hosts over SSH: evacuate, patch, reboot, return.

Each lab host has the lab repository's autopod-demo-kernel 1.0 and autopod-demo-tool 1.0 installed;
kernel 1.1 is published as a security update whose maintainer script asks for a reboot, as Debian's
kernel packages do, and tool 1.1 as a regular update, which the default policy (security) leaves. Pods
run on every host, each watched by a client on the lab's client host: Redis on lab1 (writers with
requests always in flight; every acknowledged write is read back), counters on lab2 and lab3, whose
memory holds a marker that a capture on the lab switch must not find during the run. The rollout runs
as AWX runs it: through ansible-runner, with the survey's default answers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import ansible_runner
import pytest

from lab import control
from tests.lab import pods
from tests.lab.capture import SwitchCapture
from tests.lab.fleet import HOME, MARKER, REDIS_POD
from tests.support.ansible_cli import BIN, ROOT, mitogen_strategy, module, playbook

PLAYBOOK = os.path.join(ROOT, "playbooks", "rolling_patch.yml")


def run(lab, report_dir, options=None, env=None, **extra):
    variables = {"autopod_report_dir": str(report_dir)}
    variables.update(extra)
    result = playbook(PLAYBOOK, variables, inventory=lab, options=options, env=env)
    os.makedirs(str(report_dir), exist_ok=True)
    with open(os.path.join(str(report_dir), "ansible-playbook.log"), "w") as log:
        log.write(result.stdout)
    return result


def report_of(report_dir):
    files = sorted(f for f in os.listdir(report_dir) if f.endswith(".json"))
    with open(os.path.join(report_dir, files[-1])) as handle:
        return json.load(handle)


def assert_clients_unharmed(watchers):
    # The counters' clients first: reading Redis back keeps this process busy, which their clocks would count.
    for name, watcher in sorted(watchers.items(), key=lambda item: item[0] == REDIS_POD):
        if name == REDIS_POD:
            watcher.wait_requests(100)
            watcher.stop()
            assert watcher.errors() == [] and watcher.lost() == [], watcher.report()
            print("%s: %s" % (name, watcher.report()))
            continue
        watcher.wait_lines(20)
        report = watcher.report()
        assert report["error"] is None and not report["closed_by_peer"], (name, report)
        assert report["gaps"] == [] and report["repeats"] == [], (name, report)
        assert watcher.verify().startswith("verify ok"), name
        print("%s: longest pause %.0f ms over %d lines" % (name, report["max_pause_ms"], report["lines"]))


def _survey_answers(report_dir: str) -> dict:
    """What the job template's survey (meta/awx) sends when every answer is left at its default."""
    with open(os.path.join(ROOT, "meta", "awx", "rolling_patch.survey.json")) as handle:
        answers = {q["variable"]: q["default"] for q in json.load(handle)["spec"] if q["default"] != ""}
    answers["autopod_report_dir"] = report_dir
    return answers


def _private_data_dir(base: str, inventory: str, extravars: dict) -> str:
    """A job's private data directory as AWX lays it out: env/extravars (the survey's answers), env/envvars,
    inventory/hosts, project/."""
    for sub in ("env", "inventory"):
        os.makedirs(os.path.join(base, sub))
    with open(os.path.join(base, "env", "extravars"), "w") as handle:
        json.dump(extravars, handle)
    with open(os.path.join(base, "env", "envvars"), "w") as handle:
        # as in an execution environment, ansible-playbook is on the job's PATH
        json.dump({"ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                   "PATH": BIN + os.pathsep + os.environ["PATH"]}, handle)
    shutil.copy(inventory, os.path.join(base, "inventory", "hosts"))
    os.symlink(ROOT, os.path.join(base, "project"))
    return base


def wait_for_locks(lab, hosts, job, timeout=300):
    """Until every host's maintenance lock is held (the job's preflight took them), while the job runs."""
    deadline = time.monotonic() + timeout
    while not all(module("maintenance_lock", {"state": "read"}, host=h, inventory=lab)["held"] for h in hosts):
        assert job.is_alive(), "the job ended before it held every lock"
        assert time.monotonic() < deadline, "the job took no locks in %d s" % timeout


def _demo_versions(lab, host):
    """The lab repository's two packages as installed on `host`: ["autopod-demo-kernel=1.0", ...]."""
    return pods.shell(lab, host, "dpkg-query -W -f '${Package}=${Version} ' "
                                 "autopod-demo-kernel autopod-demo-tool")["stdout"].split()


def _state_of(lab, hosts):
    """What a dry run must not change: each pod's host and PID, each host's boot and packages."""
    return {host: {"boot": control.boot_id(host),
                   "packages": _demo_versions(lab, host),
                   "pods": {p["name"]: p["init_pid"] for p in module("pod_info", {}, host=host, inventory=lab)["pods"]
                            if p["state"] == "running"}}
            for host in hosts}


def assert_dry_run_planned_everything_and_changed_nothing(lab, hosts, report_dir):
    before = _state_of(lab, hosts)
    dry = run(lab, report_dir, options=["--check"])
    assert dry.returncode == 0, dry.stdout[-6000:]
    assert _state_of(lab, hosts) == before
    report = report_of(report_dir)
    assert report["dry_run"] is True
    for host in hosts:
        assert report["hosts"][host]["result"].startswith(
            "planned: install autopod-demo-kernel, then reboot"), report["hosts"][host]
    # a peer that refuses (a rootfs an earlier test left there, say) is named, and the next peer is planned
    planned = [m for m in report["moves"] if m["phase"] == "evacuate" and m["ok"]]
    assert sorted(m["pod"] for m in planned) == sorted(HOME), report["moves"]
    assert all(m["msg"] for m in report["moves"] if not m["ok"]), report["moves"]
    for move in planned:
        assert move["result"] == "planned" and move["strategy"] in ("post-copy", "stop-and-copy"), move
        assert move["downtime_ms"] > 0 and move["bytes"] > 16 << 20 and move["runs_on"] == HOME[move["pod"]], move
        assert move["to"] in hosts and move["to"] != HOME[move["pod"]]
    assert len(re.findall(r"would move by (post-copy|stop-and-copy), [0-9.]+ MiB, expected pause about", dry.stdout)) == 3
    assert "DRY RUN" in open(os.path.join(str(report_dir), report["owner"] + ".md")).read()


def assert_job_events_carry_each_move_and_no_secret(job, report):
    """What AWX shows of the job: set_stats in its artifacts, one event per move, no key or token."""
    events = list(job.events)
    stats = [e for e in events if e["event"] == "playbook_on_stats"][-1]["event_data"]
    assert stats["artifact_data"]["autopod_report"] == report  # as AWX's workflows read it
    lines = [e["event_data"]["res"]["msg"] for e in events
             if e["event"] == "runner_on_ok" and e["event_data"].get("task", "").startswith("Say how the move went")]
    assert len(lines) == 2 * len(HOME), lines
    assert all(" frozen " in line and " MiB between the hosts" in line for line in lines), lines
    # the preflight read every host at once; the first batch read again only its own host before its pod left
    preflight_reads = [e["event_data"]["res"]["item"] for e in events if e["event"] == "runner_item_on_ok"
                       and e["event_data"].get("task", "").startswith("Read the host's pods")]
    assert sorted(preflight_reads) == sorted(report["hosts"]), preflight_reads
    first_move = next(i for i, e in enumerate(events) if "pod_migrate" in e["event_data"].get("task_action", ""))
    batch_reads = [e["event_data"]["res"]["item"] for e in events[:first_move] if e["event"] == "runner_item_on_ok"
                   and e["event_data"].get("task", "").startswith("Read those hosts' pods")]
    assert batch_reads == ["lab1"], batch_reads
    text = json.dumps(events)
    assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text
    tokens = [e["event_data"]["res"]["invocation"]["module_args"].get("credentials") for e in events
              if e["event"] == "runner_on_ok" and "pod_migrate" in e["event_data"].get("task_action", "")]
    assert tokens and all(set(t.values()) == {"VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"} for t in tokens), tokens


def test_a_host_another_run_holds_stops_the_rollout_unless_a_limit_leaves_it_out(lab, hosts, tmp_path):
    """The preflight checks every host at once; one host it cannot have stops the run before anything is
    touched, and the locks it took on the others are given back (a later run must not find them held).
    A --limit that leaves that host out runs without it (and must name localhost, where the report goes)."""
    boots = {host: control.boot_id(host) for host in hosts}
    taken = module("maintenance_lock", {"owner": "another-run", "ttl": 600}, host="lab2", inventory=lab)
    assert taken.get("failed") is not True, taken
    try:
        refused = run(lab, tmp_path / "refused")
        assert refused.returncode != 0, refused.stdout[-6000:]
        assert re.search(r"preflight failed: lab2: .*under maintenance by another-run", refused.stdout), refused.stdout[-6000:]
        locks = {host: module("maintenance_lock", {"state": "read"}, host=host, inventory=lab) for host in hosts}
        assert not locks["lab1"]["held"] and not locks["lab3"]["held"], locks
        assert locks["lab2"]["held"] and locks["lab2"]["lock"]["owner"] == "another-run", locks
        # a --limit without localhost would lose the report: refused; with it, the held host is left out of the
        # run, its preflight and its report (nothing to patch here yet)
        unreported = run(lab, tmp_path / "unreported", options=["--limit", "lab1,lab3"])
        assert unreported.returncode != 0 and "leaves out localhost" in unreported.stdout, unreported.stdout[-6000:]
        limited = run(lab, tmp_path / "limited", options=["--limit", "lab1,lab3,localhost"])
        assert limited.returncode == 0, limited.stdout[-6000:]
        report = report_of(tmp_path / "limited")
        assert sorted(report["hosts"]) == ["lab1", "lab3"], report["hosts"]
        assert all(h["result"].startswith("skipped: nothing to do") for h in report["hosts"].values()), report["hosts"]
        assert module("maintenance_lock", {"state": "read"}, host="lab2", inventory=lab)["lock"]["owner"] == "another-run"
        assert {host: control.boot_id(host) for host in hosts} == boots
    finally:
        module("maintenance_lock", {"owner": "another-run", "state": "released"}, host="lab2", inventory=lab)


def test_a_dry_run_then_the_rollout_as_awx_runs_it_then_nothing_left_to_do(lab, hosts, fleet, tmp_path):
    """One rollout, three looks at it: its dry run first; then the job itself through ansible-runner with
    a private data directory laid out as AWX lays it out, while a second run started once the job holds
    every lock must refuse; then a run with nothing left to do."""
    assert_dry_run_planned_everything_and_changed_nothing(lab, hosts, tmp_path / "dry")
    boots = {host: control.boot_id(host) for host in hosts}
    reports = tmp_path / "reports"
    data_dir = _private_data_dir(str(tmp_path / "awx"), lab, _survey_answers(str(reports)))
    with SwitchCapture() as capture:
        thread, job = ansible_runner.run_async(private_data_dir=data_dir, playbook="playbooks/rolling_patch.yml",
                                               quiet=True, ident="job-1")
        wait_for_locks(lab, hosts, thread)
        competing = run(lab, tmp_path / "competing")
        thread.join(1800)
    assert competing.returncode != 0 and "under maintenance by" in competing.stdout, competing.stdout[-3000:]
    assert job.status == "successful" and job.rc == 0, job.stdout.read()[-6000:]
    assert capture.frames and not capture.holds(MARKER.encode()), "a pod's memory crossed the wire in clear text"
    report = report_of(reports)
    for host in hosts:
        host_report = report["hosts"][host]
        assert host_report["result"] == "patched", host_report
        assert host_report["rebooted"] is True and host_report["packages_updated"] >= 1
        assert host_report["boot_id_before"] == boots[host] != host_report["boot_id_after"]
        assert control.boot_id(host) == host_report["boot_id_after"]
    moves = report["moves"]
    assert all(m["ok"] for m in moves), moves
    assert sorted(m["pod"] for m in moves if m["phase"] == "evacuate") == sorted(HOME)
    assert sorted(m["pod"] for m in moves if m["phase"] == "return") == sorted(HOME)
    for name, home in HOME.items():
        assert pods.running_on(lab, name, hosts) == [home], name
    assert_job_events_carry_each_move_and_no_secret(job, report)
    status = module("patch_status", {}, host="lab1", inventory=lab)
    assert status["needs_patching"] is False and status["reboot_required"] is False
    # the survey's default policy, security, installed the security update only: the regular one still waits
    assert [(u["name"], u["security"]) for u in status["updates"]] == [("autopod-demo-tool", False)], status["updates"]
    for host in hosts:
        assert _demo_versions(lab, host) == ["autopod-demo-kernel=1.1", "autopod-demo-tool=1.0"], host
    assert_clients_unharmed(fleet)
    assert os.path.exists(str(reports / (report["owner"] + ".md")))
    page = open(str(reports / (report["owner"] + ".html"))).read()
    assert page.count("<circle") == len(moves) and page.count('fill="#3a7"') == len(hosts)  # moves, patches

    second = run(lab, tmp_path / "second")
    assert second.returncode == 0, second.stdout[-6000:]
    # what changes on each host is the package cache patch_status refreshes, and nothing else
    recap = [line for line in second.stdout.splitlines() if line.startswith(("lab1", "lab2", "lab3"))]
    assert len(recap) == 3 and all(re.search(r"\schanged=1\s", line) for line in recap), recap
    for host in hosts:
        assert _demo_versions(lab, host) == ["autopod-demo-kernel=1.1", "autopod-demo-tool=1.0"], host
    again = report_of(tmp_path / "second")
    assert again["moves"] == [], "nothing moves when nothing needs patching"
    assert all(h["result"].startswith("skipped: nothing to do") for h in again["hosts"].values()), again["hosts"]
    assert {host: control.boot_id(host) for host in hosts} == {h: report["hosts"][h]["boot_id_after"] for h in hosts}


@pytest.mark.parametrize("strategy", [None, mitogen_strategy()], ids=["default", "mitogen"])
def test_a_host_that_does_not_come_back_stops_the_rollout(lab, hosts, fleet, tmp_path, strategy):
    control.hold("lab1")  # lab1 will not come back from its reboot
    try:
        stopped = run(lab, tmp_path / "stopped", env=strategy, autopod_reboot_timeout=20)
        assert stopped.returncode != 0, "the run must fail"
        report = report_of(tmp_path / "stopped")
        assert report["rollout_stopped"] is True
        assert report["hosts"]["lab1"]["result"] == "failed"
        assert report["hosts"]["lab2"]["result"].startswith("not started")
        assert report["hosts"]["lab3"]["result"].startswith("not started")
        # lab1's pod is alive on a peer and its client never noticed more than a pause
        assert pods.running_on(lab, "rp-a", ["lab2", "lab3"]) in (["lab2"], ["lab3"])
        assert_clients_unharmed(fleet)
    finally:
        control.release("lab1")


def test_the_rollout_under_mitogen_does_what_it_does_under_the_default_strategy(lab, hosts, fleet, tmp_path):
    """The accelerator README offers: the whole rollout under Mitogen's strategy, Redis's writers and the
    counters' clients watching; every host patched and rebooted, every pod home, no client harmed."""
    boots = {host: control.boot_id(host) for host in hosts}
    result = run(lab, tmp_path / "mitogen", env=mitogen_strategy())
    assert result.returncode == 0, result.stdout[-6000:]
    report = report_of(tmp_path / "mitogen")
    for host in hosts:
        assert report["hosts"][host]["result"] == "patched", report["hosts"][host]
        assert control.boot_id(host) != boots[host], host
        assert _demo_versions(lab, host) == ["autopod-demo-kernel=1.1", "autopod-demo-tool=1.0"], host
    assert all(m["ok"] for m in report["moves"]) and len(report["moves"]) == 2 * len(HOME), report["moves"]
    for name, home in HOME.items():
        assert pods.running_on(lab, name, hosts) == [home], name
    assert_clients_unharmed(fleet)
