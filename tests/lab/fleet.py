"""A fleet for rolling-patch tests: on each of three lab hosts, the lab repository's autopod-demo-kernel 1.0
and autopod-demo-tool 1.0, with kernel 1.1 published as a security update that asks for a reboot and tool 1.1 as
a regular update; and a pod on every host, each watched by a client on the lab's client host: Redis on lab1
(writers with requests always in flight), counters on lab2 and lab3 whose memory holds MARKER."""

from __future__ import annotations

import secrets
from typing import Dict, Iterator, List

from lab import aptrepo
from lab import topology as topo
from tests.lab import pods

KERNEL_1 = aptrepo.Package("autopod-demo-kernel", "1.0", "autopod-lab-security", needs_reboot=True)
KERNEL_2 = aptrepo.Package("autopod-demo-kernel", "1.1", "autopod-lab-security", needs_reboot=True)
TOOL_1 = aptrepo.Package("autopod-demo-tool", "1.0", "autopod-lab")
TOOL_2 = aptrepo.Package("autopod-demo-tool", "1.1", "autopod-lab")  # a regular update: policy security leaves it
HOME = {"rp-a": "lab1", "rp-b": "lab2", "rp-c": "lab3"}
REDIS_POD = "rp-a"
MARKER = "autopod-rolling-marker-%s" % secrets.token_hex(8)  # in every counter pod's memory


def fleet(lab: str, hosts: List[str]) -> Iterator[Dict[str, object]]:
    """Set the fleet up, yield each pod's watcher, and take it all away again."""
    aptrepo.publish(topo.repo_dir(), [KERNEL_1, TOOL_1])
    for host in hosts:
        pods.shell(lab, host, "apt-get update -q && apt-get install -y -q autopod-demo-kernel=1.0 autopod-demo-tool=1.0 "
                              "&& rm -f /var/run/reboot-required*")
    aptrepo.publish(topo.repo_dir(), [KERNEL_1, KERNEL_2, TOOL_1, TOOL_2])
    watchers = {}
    for offset, (name, host) in enumerate(sorted(HOME.items()), start=20):
        if name == REDIS_POD:
            pods.place_service(lab, host, "redis", name, offset)
            watchers[name] = pods.service_client("redis", offset)
        else:
            pods.place(lab, host, name, offset, mib=16, env={"POD_SECRET": " ".join([MARKER] * 64)})
            watchers[name] = pods.client(offset)
    for name, watcher in watchers.items():
        watcher.wait_requests(100) if name == REDIS_POD else watcher.wait_lines(10)
    try:
        yield watchers
    finally:  # each step even when one before it fails: a later test must find no pod, package or lock of these
        for watcher in watchers.values():
            watcher.close()
        try:
            pods.remove_everywhere(lab, hosts)
        finally:
            for host in hosts:
                pods.shell(lab, host, "apt-get purge -y -q autopod-demo-kernel autopod-demo-tool "
                                      "&& rm -f /var/run/reboot-required* /var/lib/autopod/maintenance.json")
            aptrepo.publish(topo.repo_dir(), [])
