"""rolling_patch.yml as AWX runs it: through ansible-runner, with a private data directory laid out as AWX lays
it out (env/extravars from the survey's answers, env/envvars, inventory/hosts, project/), on the lab."""

from __future__ import annotations

import json
import os
import shutil

import ansible_runner

from tests.lab.fleet import HOME
from tests.support.ansible_cli import BIN, ROOT


def _survey_answers(report_dir: str) -> dict:
    """What the job template's survey (meta/awx) sends when every answer is left at its default."""
    with open(os.path.join(ROOT, "meta", "awx", "rolling_patch.survey.json")) as handle:
        answers = {q["variable"]: q["default"] for q in json.load(handle)["spec"] if q["default"] != ""}
    answers["autopod_report_dir"] = report_dir
    return answers


def _private_data_dir(base: str, inventory: str, extravars: dict) -> str:
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


def test_the_job_runs_under_ansible_runner_and_its_events_carry_each_move_and_no_secret(lab, hosts, fleet, tmp_path):
    data_dir = _private_data_dir(str(tmp_path / "awx"), lab, _survey_answers(str(tmp_path / "reports")))
    run = ansible_runner.run(private_data_dir=data_dir, playbook="playbooks/rolling_patch.yml", quiet=True,
                             ident="job-1")
    events = list(run.events)
    assert run.status == "successful" and run.rc == 0, run.stdout.read()[-6000:]

    # set_stats reaches the job's artifacts, as AWX's workflows read them
    stats = [e for e in events if e["event"] == "playbook_on_stats"][-1]["event_data"]
    report = stats["artifact_data"]["autopod_report"]
    assert sorted(report["hosts"]) == hosts and all(h["result"] == "patched" for h in report["hosts"].values())
    # one event per move as it completes, with its figures
    lines = [e["event_data"]["res"]["msg"] for e in events
             if e["event"] == "runner_on_ok" and e["event_data"].get("task", "").startswith("Say how the move went")]
    assert len(lines) == 2 * len(HOME), lines
    assert all(" frozen " in line and " MiB between the hosts" in line for line in lines), lines
    # no event carries a move's private key or its token
    text = json.dumps(events)
    assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text
    tokens = [e["event_data"]["res"]["invocation"]["module_args"].get("credentials") for e in events
              if e["event"] == "runner_on_ok" and "pod_migrate" in e["event_data"].get("task_action", "")]
    assert tokens and all(set(t.values()) == {"VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"} for t in tokens), tokens
    assert os.path.isdir(os.path.join(data_dir, "artifacts", "job-1"))
