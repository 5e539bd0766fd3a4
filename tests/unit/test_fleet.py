"""Where the fleet's pods run, from one read and the moves since: what a batch asks instead of reading every host
again (plugin_utils/fleet.py, the filters pods_away, after_moves and pod_on)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.autopod.autopod.plugins.filter.after_moves import after_moves
from ansible_collections.autopod.autopod.plugins.filter.hosts_to_read import hosts_to_read
from ansible_collections.autopod.autopod.plugins.filter.pod_on import pod_on
from ansible_collections.autopod.autopod.plugins.filter.pods_away import pods_away


def _read(**hosts: list) -> list:
    """pod_info results registered in a loop over hosts: host=[(pod, state, home), ...]."""
    return [{"item": host, "changed": False, "host": {},
             "pods": [{"name": name, "state": state, "home": home} for name, state, home in pods]}
            for host, pods in hosts.items()]


def _move(pod: str, source: str, peer: str, runs_on: str, ok: bool = True) -> dict:
    return {"pod": pod, "phase": "evacuate", "from": source, "to": peer, "ok": ok, "runs_on": runs_on}


def test_a_pod_that_never_moved_is_at_home_and_one_left_on_a_peer_by_an_earlier_run_is_away():
    read = _read(h1=[("web", "running", None)], h2=[("db", "running", "h1"), ("own", "running", None)])
    assert pods_away(read, "h1") == [{"name": "db", "host": "h2"}]
    assert pods_away(read, "h2") == []


def test_the_moves_since_the_read_say_where_the_pods_are_now():
    read = _read(h1=[("web", "running", None), ("db", "running", None)], h2=[], h3=[("cache", "running", "h1")])
    moves = [_move("web", "h1", "h2", "h2"),  # moved
             _move("db", "h1", "h3", "h1", ok=False),  # refused: still here
             _move("cache", "h3", "h2", "h2")]  # a batch peer moved it on
    assert pods_away(after_moves(read, moves), "h1") == [{"name": "cache", "host": "h2"}, {"name": "web", "host": "h2"}]


def test_a_dry_runs_planned_moves_leave_every_pod_where_it_is():
    read = _read(h1=[("web", "running", None)], h2=[])
    assert pods_away(after_moves(read, [_move("web", "h1", "h2", "h1")]), "h1") == []


def test_stopped_pods_and_hosts_that_did_not_answer_hold_nothing_to_bring_back():
    read = _read(h2=[("stopped", "stopped", "h1")])
    read += [{"item": "h3", "failed": True, "msg": "no answer"}, {"item": "h4", "unreachable": True}]
    assert pods_away(read, "h1") == []


def test_after_the_moves_a_moved_pod_is_on_its_peer_with_its_home_and_a_move_back_plans_from_there():
    read = _read(h1=[("web", "running", None), ("old", "stopped", None)], h2=[("db", "running", "h3")], h3=[])
    moves = [_move("web", "h1", "h2", "h2"), _move("db", "h2", "h1", "h2", ok=False)]  # db's move refused
    now = after_moves(read, moves)
    assert pod_on("h2", now, "web") == {"item": "h2", "pods": [{"name": "web", "state": "running", "home": "h1"}]}
    assert pod_on("h1", now, "web") == {"item": "h1", "pods": []}
    assert pod_on("h1", now, "old") == {"item": "h1", "pods": [{"name": "old", "state": "stopped", "home": None}]}
    assert pod_on("h2", now, "db")["pods"] == [{"name": "db", "state": "running", "home": "h3"}]
    assert pods_away(now, "h1") == [{"name": "web", "host": "h2"}]
    assert read[0]["pods"][0] == {"name": "web", "state": "running", "home": None}  # the read itself is kept


def test_a_pod_moved_to_a_host_without_an_answer_is_in_no_answer():
    read = _read(h1=[("web", "running", None)]) + [{"item": "h2", "unreachable": True}]
    now = after_moves(read, [_move("web", "h1", "h2", "h2")])
    assert now == _read(h1=[]) + [{"item": "h2", "unreachable": True}]


def test_a_pod_on_a_host_is_what_pod_info_with_its_name_says_there():
    read = _read(h1=[("web", "running", None), ("db", "running", None)], h2=[])
    assert pod_on("h1", read, "web") == {"item": "h1", "pods": [{"name": "web", "state": "running", "home": None}]}
    assert pod_on("h2", read, "web") == {"item": "h2", "pods": []}


@pytest.mark.parametrize("read", [_read(h1=[]), [{"item": "h2", "failed": True}]])
def test_a_plan_from_a_read_without_the_hosts_answer_is_refused(read):
    with pytest.raises(AnsibleFilterError, match="no answer from h2"):
        pod_on("h2", read, "web")


def test_something_else_than_a_read_is_refused_with_a_clear_error():
    with pytest.raises(AnsibleFilterError, match="pod_info results"):
        pods_away([{"item": "h1", "pods": [{"state": "running"}]}], "h1")


def _at(seconds: int) -> str:
    return "2026-12-03T14:00:%02d.%06d+00:00" % (seconds, seconds * 1000)


def _record(source: str, peer: str, seconds: int, result: str = "moved") -> dict:
    return dict(_move("web", source, peer, peer), at=_at(seconds), result=result)


def test_with_no_read_kept_every_host_is_read():
    assert hosts_to_read([], ["h1", "h2", "h3"]) == ["h1", "h2", "h3"]


def test_a_kept_read_is_read_again_only_where_a_move_touched_it_since_and_for_the_batch():
    read = _read(h1=[], h2=[], h3=[], h4=[], h5=[])
    moves = [_record("h1", "h2", 1),  # before the read: already in it
             _record("h3", "h4", 20, result="not_moved"),  # after it, failed: where its pod runs is uncertain
             _record("h4", "h3", 21)]
    assert hosts_to_read(read, ["h1", "h2", "h3", "h4", "h5"], moves, _at(10), ["h5"]) == ["h3", "h4", "h5"]


def test_a_host_that_did_not_answer_is_read_again_and_a_dry_runs_planned_moves_touch_nothing():
    read = _read(h1=[], h2=[]) + [{"item": "h3", "unreachable": True, "msg": "no route"}]
    moves = [_record("h1", "h2", 20, result="planned")]
    assert hosts_to_read(read, ["h1", "h2", "h3"], moves, _at(10)) == ["h3"]


def test_a_move_record_without_a_time_is_a_clear_error():
    with pytest.raises(AnsibleFilterError, match="ISO 8601"):
        hosts_to_read(_read(h1=[]), ["h1"], [_move("web", "h1", "h2", "h2")], _at(10))
