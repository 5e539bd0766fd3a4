"""Where the fleet's pods run, from one read of every host and the moves made since.

A read is M(autopod.autopod.pod_info) registered in a loop over the hosts (`item` is the host). The rolling patch
reads the fleet once per batch and plans the batch from it; this module answers the later questions of the batch
(which pods of a host are away, where one pod runs) from that read and the batch's move records, instead of
asking every host again. A move record is the roles' (pod_evacuate_moves): the pod, and `runs_on`, the host it
runs on after the attempt, whatever its outcome.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional


def answered(result: Mapping[str, Any]) -> bool:
    """Whether a host's result says what runs there (a failed or unreachable host says nothing)."""
    return not result.get("failed") and not result.get("unreachable") and "pods" in result


def _running_pods(read: Iterable[Mapping[str, Any]]) -> Dict[str, Dict[str, str]]:
    """Pod name to the host it runs on and its home (where it was created, until a move records another)."""
    where: Dict[str, Dict[str, str]] = {}
    for result in read:
        if not answered(result):
            continue
        host = str(result["item"])
        for pod in result["pods"]:
            if pod.get("state") == "running":
                where[str(pod["name"])] = {"host": host, "home": str(pod.get("home") or host)}
    return where


def pods_away(read: Iterable[Mapping[str, Any]], home: str,
              moves: Iterable[Mapping[str, Any]] = ()) -> List[Dict[str, str]]:
    """The running pods whose home is `home` and which run elsewhere, after the moves made since the read:
    [{name, host}], by name."""
    where = _running_pods(read)
    for move in moves:
        pod = where.get(str(move.get("pod")))
        if pod is not None and move.get("runs_on"):
            pod["host"] = str(move["runs_on"])
    return [{"name": name, "host": pod["host"]} for name, pod in sorted(where.items())
            if pod["home"] == home and pod["host"] != home]


def pod_on(host: str, read: Iterable[Mapping[str, Any]], name: str) -> Dict[str, Any]:
    """What pod_info with `name` would have said on `host` at the time of the read: {pods: [the pod, if there]}.
    A host the read has no answer from is an error: a plan from it would be a guess."""
    result: Optional[Mapping[str, Any]] = next((r for r in read if str(r.get("item")) == host), None)
    if result is None or not answered(result):
        raise ValueError("the fleet read has no answer from %s" % host)
    return {"item": host, "pods": [pod for pod in result["pods"] if pod.get("name") == name]}
