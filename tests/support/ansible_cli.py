"""Run AutoPod's modules and playbooks through the real Ansible command line, as a sysadmin would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional

import ansible_mitogen  # the controller's only: Mitogen carries itself to the hosts over SSH

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callbacks")


def _env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env.update({"ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_DEPRECATION_WARNINGS": "0"})
    env.update(extra or {})
    return env


def mitogen_strategy() -> Dict[str, str]:
    """The environment that runs a playbook under Mitogen's strategy, the accelerator README describes: its strategy,
    and collections looked for only in the collections path (.collections, where scripts/setup.sh links the two the
    playbooks use), since Mitogen reads every installed collection's metadata for each module task."""
    return {"ANSIBLE_STRATEGY_PLUGINS": os.path.join(os.path.dirname(ansible_mitogen.__file__), "plugins", "strategy"),
            "ANSIBLE_STRATEGY": "mitogen_linear", "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False"}


def module(name: str, args: Dict[str, Any], check: bool = False, diff: bool = False, host: str = "localhost",
           inventory: Optional[str] = None) -> Dict[str, Any]:
    """`ansible HOST -m autopod.autopod.NAME -a '{json}'` (or a fully qualified NAME); returns the host's result."""
    fqcn = name if "." in name else "autopod.autopod." + name
    with tempfile.TemporaryDirectory() as tree:
        argv = [os.path.join(BIN, "ansible"), host, "-m", fqcn] + (["-a", json.dumps(args)] if args else [])
        if inventory:
            argv += ["-i", inventory]
        else:
            argv += ["-c", "local", "-e", "ansible_python_interpreter=" + sys.executable]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        env = _env({"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_CALLBACK_PLUGINS": CALLBACKS,
                    "ANSIBLE_CALLBACKS_ENABLED": "result_file", "AUTOPOD_RESULT_DIR": tree})
        proc = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, check=False)
        path = os.path.join(tree, host)
        if not os.path.exists(path):
            raise AssertionError("ansible produced no result (exit %d):\n%s" % (proc.returncode, proc.stdout))
        with open(path) as handle:
            return json.load(handle)


def playbook(path: str, extra_vars: Dict[str, Any], inventory: Optional[str] = None,
             options: Optional[List[str]] = None, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    argv = [os.path.join(BIN, "ansible-playbook"), path, "-e", json.dumps(extra_vars)] + (options or [])
    if inventory:
        argv += ["-i", inventory]
    else:
        argv += ["-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable]
    return subprocess.run(argv, cwd=ROOT, env=_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)
