"""Where the fleet's pods run, from one read of every host and the moves made since.

A read is M(autopod.autopod.pod_info) registered in a loop over the hosts (`item` is the host). The rolling patch
keeps one read of the fleet for the whole run and, for each batch, reads again only the hosts it cannot trust
(hosts_to_read); this module answers the later questions of the batch (which pods of a host are away, where one
pod runs) from that read and the batch's move records, instead of asking every host again. A move record is the
roles' (pod_evacuate_moves): the pod, `from` and `to`, `at` (when it ended, ISO 8601), `result`, and `runs_on`,
the host it runs on after the attempt, whatever its outcome.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

PLANNED = "planned"  # a dry run's move record: nothing moved


def answered(result: Mapping[str, Any]) -> bool:
    """Whether a host's result says what runs there (a failed or unreachable host says nothing)."""
    return not result.get("failed") and not result.get("unreachable") and "pods" in result


def _running_pods(read: Iterable[Mapping[str, Any]], moves: Iterable[Mapping[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Pod name to the host it runs on after the moves (each one's `runs_on`) and its entry in the read, with its
    home in it (where it was created, until a move records another, as pod_receive records it on the peer)."""
    where: Dict[str, Dict[str, Any]] = {}
    for result in read:
        if not answered(result):
            continue
        host = str(result["item"])
        for pod in result["pods"]:
            if pod.get("state") == "running":
                where[str(pod["name"])] = {"host": host, "pod": dict(pod, home=str(pod.get("home") or host))}
    for move in moves:
        pod = where.get(str(move.get("pod")))
        if pod is not None and move.get("runs_on"):
            pod["host"] = str(move["runs_on"])
    return where


def after_moves(read: Iterable[Mapping[str, Any]], moves: Iterable[Mapping[str, Any]] = ()) -> List[Dict[str, Any]]:
    """The read as it would be if taken after the moves: each moved pod's entry is on the host it runs on now.
    A pod moved to a host the read has no answer from is in no answer."""
    read = list(read)
    where = _running_pods(read, moves)
    return [dict(result, pods=[pod for pod in result["pods"] if pod.get("state") != "running"]
                 + [where[name]["pod"] for name in sorted(where) if where[name]["host"] == str(result["item"])])
            if answered(result) else dict(result) for result in read]


def pods_away(read: Iterable[Mapping[str, Any]], home: str) -> List[Dict[str, str]]:
    """The running pods whose home is `home` and which run elsewhere, in a read (after_moves brings one up to
    date): [{name, host}], by name."""
    return [{"name": name, "host": entry["host"]} for name, entry in sorted(_running_pods(read, ()).items())
            if entry["pod"]["home"] == home and entry["host"] != home]


def pod_on(host: str, read: Iterable[Mapping[str, Any]], name: str) -> Dict[str, Any]:
    """What pod_info with `name` would have said on `host` at the time of the read: {pods: [the pod, if there]}.
    A host the read has no answer from is an error: a plan from it would be a guess."""
    result: Optional[Mapping[str, Any]] = next((r for r in read if str(r.get("item")) == host), None)
    if result is None or not answered(result):
        raise ValueError("the fleet read has no answer from %s" % host)
    return {"item": host, "pods": [pod for pod in result["pods"] if pod.get("name") == name]}


def hosts_to_read(read: Iterable[Mapping[str, Any]], hosts: Sequence[str], moves: Iterable[Mapping[str, Any]] = (),
                  read_at: str = "", always: Sequence[str] = ()) -> List[str]:
    """The hosts of `hosts` whose figures must be read again before a batch is planned from `read`, taken at
    `read_at`: those it has no answer from, those a move touched (as its source or its destination) after
    `read_at`, whatever the move's outcome, and `always` (the batch's own hosts, whose pods are about to leave).
    A dry run's planned moves touch nothing. Every host is read when there is no read yet."""
    answers = {str(result.get("item")) for result in read if answered(result)}
    since = datetime.fromisoformat(read_at) if read_at else None
    touched = set()
    for move in moves:
        if move.get("result") == PLANNED:
            continue
        if since is None or datetime.fromisoformat(str(move["at"])) >= since:
            touched.update((str(move.get("from")), str(move.get("to"))))
    return [host for host in hosts if host not in answers or host in touched or host in always]
