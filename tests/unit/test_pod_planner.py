"""pod_create's planner in check mode: the actions it would take from each state, and what it refuses,
with nothing written. (Acting on the plan needs namespaces: the integration tier.)"""

from __future__ import annotations

import os

import pytest

from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.pod import PodSpec
from ansible_collections.autopod.autopod.plugins.module_utils.pods import Pods
from ansible_collections.autopod.autopod.plugins.module_utils.store import CHECKPOINTED, MOVED, Manifest, PodStore


def _params(rootfs, state="started", **overrides):
    params = {"name": "web", "rootfs": str(rootfs), "command": ["/bin/sh"], "state": state}
    params.update(overrides)
    return params


def _stored(state_dir, rootfs, status, **fields):
    """A pod this host knows, not running (no supervisor): stopped, checkpointed or a moved tombstone."""
    store = PodStore(str(state_dir))
    store.save(Manifest(spec=PodSpec.from_params(_params(rootfs)), status=status, **fields))
    return store


def _plan(state_dir, params):
    return Pods(str(state_dir), check_mode=True).ensure(params)


def test_a_new_pod_would_be_created_and_started_and_nothing_is_written(tmp_path):
    planned = _plan(tmp_path / "state", _params(tmp_path))
    assert planned["changed"] and planned["actions"] == ["create pod web", "start pod web"]
    assert planned["diff"]["before"] == {"state": "absent"} and planned["pod"]["state"] == "running"
    assert not os.path.exists(tmp_path / "state" / "pods" / "web")


def test_an_unknown_pod_without_a_definition_is_refused(tmp_path):
    with pytest.raises(AutopodError, match="rootfs and command are needed"):
        _plan(tmp_path / "state", {"name": "web", "state": "started"})


def test_a_stopped_pod_with_a_new_command_would_be_updated_then_started(tmp_path):
    _stored(tmp_path / "state", tmp_path, "stopped")
    planned = _plan(tmp_path / "state", _params(tmp_path, command=["/bin/true"]))
    assert planned["actions"] == ["update pod web: command", "start pod web"]


def test_the_same_definition_and_state_plan_nothing(tmp_path):
    _stored(tmp_path / "state", tmp_path, "stopped")
    planned = _plan(tmp_path / "state", _params(tmp_path, state="stopped"))
    assert not planned["changed"] and planned["actions"] == []


def test_removal_names_the_state_it_removes(tmp_path):
    _stored(tmp_path / "state", tmp_path, "stopped")
    assert _plan(tmp_path / "state", {"name": "web", "state": "absent"})["actions"] == ["remove pod web (stopped)"]
    assert _plan(tmp_path / "other", {"name": "web", "state": "absent"})["actions"] == []


@pytest.mark.parametrize("status, fields, refusal", [
    (MOVED, {"moved_to": "web2"}, "remove this copy with state=absent"),
    (CHECKPOINTED, {"image_dir": "/var/lib/autopod/images/web"}, "bring it back with autopod.autopod.pod_restore"),
])
def test_a_pod_that_moved_or_is_checkpointed_is_never_started_afresh(tmp_path, status, fields, refusal):
    _stored(tmp_path / "state", tmp_path, status, **fields)
    with pytest.raises(AutopodError, match=refusal):
        _plan(tmp_path / "state", {"name": "web", "state": "started"})
