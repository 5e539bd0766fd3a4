"""Which peer takes which pod while a batch of hosts is patched: a pure function of the fleet's figures.

Rules, in order:
- a pod never goes to a host of the batch being patched (nor to one the run has given up on), nor
  outside the peers its host is allowed, when those are given;
- a peer takes a pod only if the pod's CPU features are a subset of the peer's (CRIU refuses to restore
  on a CPU that lacks a feature the image was dumped with) and its CRIU is at least as new;
- a peer is never given more memory or disk than it has free, counting every pod already planned for it;
- among the peers that fit, the one with the most memory left takes the pod (pods are spread, not piled),
  and the biggest pods are placed first, so that a big pod is not left without room by small ones.

A pod gets an ordered list of peers: the first is its placement; the others also fit it now and are where
it is offered if the first refuses. A pod no peer fits is returned with the reason.

Cost: peers are grouped by compatibility (CPU features, CRIU version: a fleet has few such groups), and
each group keeps a heap on free memory, so each pod costs a few heap operations: about O(P log H).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.autopod.autopod.plugins.module_utils.migration.protocol import MEMORY_MARGIN
from ansible_collections.autopod.autopod.plugins.plugin_utils.fleet import answered

FALLBACK_PEERS = 2  # peers offered after the first, if it refuses


@dataclass
class Host:
    name: str
    memory_free: int
    disk_free: int
    cpu_flags: FrozenSet[str] = frozenset()
    criu_version: Tuple[int, ...] = ()


@dataclass
class Pod:
    name: str
    host: str
    memory: int
    disk: int = 0
    allowed: Optional[FrozenSet[str]] = None  # the only peers it may go to (autopod_peers), if set


@dataclass
class Placement:
    peers: Dict[str, List[str]] = field(default_factory=dict)  # pod -> peers, its placement first
    unplaced: Dict[str, str] = field(default_factory=dict)  # pod -> why no peer takes it
    load: Dict[str, Dict[str, int]] = field(default_factory=dict)  # peer -> memory, disk and pods planned

    def as_dict(self) -> Dict[str, object]:
        return {"peers": self.peers, "unplaced": self.unplaced, "load": self.load}


class _Group:
    """Peers of one compatibility class in a heap on free memory, the most on top. An entry whose figure
    is no longer the peer's (the peer took a pod since) is stale and dropped when it reaches the top."""

    def __init__(self, cpu_flags: FrozenSet[str], criu_version: Tuple[int, ...]) -> None:
        self.cpu_flags, self.criu_version = cpu_flags, criu_version
        self.heap: List[Tuple[int, str]] = []

    def accepts(self, source: Host) -> bool:
        return source.cpu_flags <= self.cpu_flags and source.criu_version <= self.criu_version


class _Fleet:
    def __init__(self, peers: Iterable[Host]) -> None:
        self.memory: Dict[str, int] = {}
        self.disk: Dict[str, int] = {}
        self.groups: Dict[Tuple[FrozenSet[str], Tuple[int, ...]], _Group] = {}
        self.group_of: Dict[str, _Group] = {}
        for peer in peers:
            self.memory[peer.name], self.disk[peer.name] = peer.memory_free, peer.disk_free
            key = (peer.cpu_flags, peer.criu_version)
            group = self.groups.setdefault(key, _Group(*key))
            group.heap.append((-peer.memory_free, peer.name))
            self.group_of[peer.name] = group
        for group in self.groups.values():
            heapq.heapify(group.heap)

    def candidates(self, pod: Pod, groups: Sequence[_Group], wanted: int) -> List[str]:
        """Up to `wanted` peers that fit `pod` now, the most free memory first."""
        found: List[Tuple[int, str]] = []
        for group in groups:
            kept: List[Tuple[int, str]] = []
            fitting = 0
            while group.heap and fitting < wanted:
                entry = heapq.heappop(group.heap)
                if -entry[0] != self.memory[entry[1]]:
                    continue  # stale: dropped
                kept.append(entry)
                if -entry[0] < pod.memory:  # every peer below has even less
                    break
                if self.disk[entry[1]] >= pod.disk and (pod.allowed is None or entry[1] in pod.allowed):
                    found.append(entry)
                    fitting += 1
            for entry in kept:
                heapq.heappush(group.heap, entry)
        return [name for _free, name in sorted(found)[:wanted]]

    def reserve(self, peer: str, pod: Pod) -> None:
        self.memory[peer] -= pod.memory
        self.disk[peer] -= pod.disk
        if pod.memory:  # else its entry still holds the right figure
            heapq.heappush(self.group_of[peer].heap, (-self.memory[peer], peer))


def place(hosts: Iterable[Host], pods: Iterable[Pod], batch: Iterable[str],
          excluded: Iterable[str] = ()) -> Placement:
    """Plan where the pods of the hosts of `batch` go while those are patched (see the module's rules).

    Pods of other hosts stay where they are: their memory is already out of their host's free figure."""
    by_name = {host.name: host for host in hosts}
    leaving = set(batch)
    off_limits = leaving | set(excluded)
    fleet = _Fleet(h for name, h in by_name.items() if name not in off_limits)
    accepting: Dict[Tuple[FrozenSet[str], Tuple[int, ...]], List[_Group]] = {}
    result = Placement()
    for pod in sorted((p for p in pods if p.host in leaving), key=lambda p: (-p.memory, -p.disk, p.name)):
        source = by_name.get(pod.host)
        if source is None:
            result.unplaced[pod.name] = "its host %s is not in the fleet" % pod.host
            continue
        key = (source.cpu_flags, source.criu_version)
        if key not in accepting:
            accepting[key] = [g for g in fleet.groups.values() if g.accepts(source)]
        if not accepting[key]:
            result.unplaced[pod.name] = "no peer outside the batch has a compatible CPU and CRIU"
            continue
        peers = fleet.candidates(pod, accepting[key], 1 + FALLBACK_PEERS)
        if not peers:
            result.unplaced[pod.name] = "no compatible peer has %d MiB of memory and %d MiB of disk free" % (
                pod.memory >> 20, pod.disk >> 20)
            continue
        fleet.reserve(peers[0], pod)
        result.peers[pod.name] = peers
        load = result.load.setdefault(peers[0], {"memory": 0, "disk": 0, "pods": 0})
        load["memory"] += pod.memory
        load["disk"] += pod.disk
        load["pods"] += 1
    return result


def from_pod_info(results: Iterable[Mapping[str, Any]], allowed: Mapping[str, Sequence[str]]
                  ) -> Tuple[List[Host], List[Pod]]:
    """Hosts and pods from pod_info results registered in a loop over the hosts (`item` is the host).
    A host whose result failed (unreachable, say) is left out: it takes nothing. What a host's pods may take
    is its free memory less the headroom its receiver keeps for a move (MEMORY_MARGIN), which it would
    otherwise refuse the last pod over."""
    hosts: List[Host] = []
    pods: List[Pod] = []
    for result in results:
        if not answered(result) or "host" not in result:
            continue
        name, facts = str(result["item"]), result["host"]
        hosts.append(Host(name=name, memory_free=max(int(facts.get("memory_available") or 0) - MEMORY_MARGIN, 0),
                          disk_free=int(facts.get("disk_available") or 0),
                          cpu_flags=frozenset(facts.get("cpu_flags") or ()),
                          criu_version=_version(facts.get("criu_version"))))
        peers = frozenset(allowed[name]) if name in allowed else None
        pods.extend(Pod(name=str(pod["name"]), host=name, memory=int(pod.get("resident_memory") or 0),
                        disk=int(pod.get("disk_usage") or 0), allowed=peers)
                    for pod in result["pods"] if pod.get("state") == "running")
    return hosts, pods


def _version(text: Optional[object]) -> Tuple[int, ...]:
    return tuple(int(part) for part in str(text).split(".") if part.isdigit()) if text else ()
