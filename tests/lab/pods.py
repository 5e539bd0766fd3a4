"""Pods in the lab, for the lab tests: placing them, moving them, and clients that watch them."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from typing import Any, Callable, Dict, Iterator, List, Optional

from ansible_collections.autopod.autopod.plugins.lookup.move_credentials import make_credentials
from lab import topology as topo
from tests.support.ansible_cli import module
from workloads import desktop, redis_client, services
from workloads.ping_client import PingClient
from workloads.rootfs import COUNTER_SOURCE, build_rootfs
from workloads.stream_client import StreamClient

PODS_DIR = "/var/lib/autopod-pods"  # per-host storage, in each host's own root
SHARED_PODS = topo.SHARED_DIR + "/pods"
CRIU = "/usr/local/sbin/criu"
IMAGES = "/run/autopod"  # tmpfs on every lab host
# The pods' parent cgroup, and its limit, usage and OOM-event files (cgroup v2, or v1's memory controller).
POD_CGROUP = ("if [ -e /sys/fs/cgroup/cgroup.controllers ]; then d=/sys/fs/cgroup/autopod l=memory.max u=memory.current "
              "e=memory.events; else d=/sys/fs/cgroup/memory/autopod l=memory.limit_in_bytes u=memory.usage_in_bytes "
              "e=memory.oom_control; fi; ")


def base_rootfs() -> str:
    """The counter rootfs, built where every lab host sees it (the shared directory), again when counter.c changed."""
    path = os.path.join(topo.shared_source(), "base-rootfs")
    binary = os.path.join(path, "bin", "counter")
    if not os.path.exists(binary) or os.path.getmtime(binary) < os.path.getmtime(COUNTER_SOURCE):
        build_rootfs(path)
    return topo.SHARED_DIR + "/base-rootfs"


def client_tool(argv: List[str], timeout: float = 600) -> str:
    """A tool run on the lab's client host from the services' rootfs (Debian's own redis-cli, pgbench,
    pg_amcheck); its output, or CalledProcessError with it."""
    services_rootfs()
    command = ["nsenter", "--net=" + topo.netns_path(topo.CLIENT_NETNS)]
    if argv[0] != "wrk":  # the machine's wrk (the services' rootfs does not have it)
        command += ["chroot", os.path.join(topo.shared_source(), "services-rootfs")]
    return subprocess.run(command + argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=timeout, check=True).stdout


def pg_amcheck(address: str) -> str:
    """PostgreSQL's own check of every table and index (heap and B-tree, all index entries against the
    heap); empty output means clean."""
    return client_tool(["/usr/lib/postgresql/15/bin/pg_amcheck", "--install-missing", "--heapallindexed",
                        "-h", address, "-U", "postgres", "postgres"], 900)


def _shared_copy(name: str, stamp: str, build: Callable[[], str]) -> str:
    """A cached rootfs copied to the lab's shared storage (once per lab, while its stamp is there), as
    every lab host sees it."""
    path = os.path.join(topo.shared_source(), name)
    if not os.path.exists(os.path.join(path, stamp)):
        shutil.rmtree(path, ignore_errors=True)
        # cp -a, not shutil.copytree: a debootstrap root has device nodes, which copytree would read from
        subprocess.run(["cp", "-a", build(), path], check=True)
    return topo.SHARED_DIR + "/" + name


def services_rootfs() -> str:
    """The services' rootfs (Redis, PostgreSQL, nginx from Debian)."""
    return _shared_copy("services-rootfs", services.STAMP, services.build_services_rootfs)


def desktop_rootfs() -> str:
    """The desktop session's rootfs (Xvnc, xclock, xterm from Debian)."""
    return _shared_copy("desktop-rootfs", desktop.STAMP, desktop.build_desktop_rootfs)


def place_service(inventory: str, host: str, service: str, name: str, offset: int) -> Dict[str, Any]:
    """A pod running Debian's `service` (redis, postgres or nginx) on `host`, with its own copy of the rootfs."""
    rootfs = os.path.join(PODS_DIR, name)
    shell(inventory, host, "rm -rf %s && mkdir -p %s && cp -a %s %s" % (rootfs, PODS_DIR, services_rootfs(), rootfs))
    created = module("pod_create", services.pod_args(service, name, rootfs, "%s/%d" % (topo.pod_ip(offset), topo.PREFIXLEN),
                                                     topo.HOST_BRIDGE), host=host, inventory=inventory)
    assert created.get("changed") and created["pod"]["state"] == "running", created
    return created


def ping_client(offset: int, workers: int = 4) -> PingClient:
    """Request/response clients of the counter pod at pod_ip(offset), `workers` pings in flight, started."""
    return PingClient(topo.pod_ip(offset), 7000, topo.netns_path(topo.CLIENT_NETNS), workers).start()


def service_client(service: str, offset: int, workers: int = 4):
    """A client of the service in pod_ip(offset), from the lab's client host, with `workers` requests in flight."""
    kind = {"redis": redis_client.RedisClient, "postgres": services.PostgresClient, "nginx": services.HttpClient}
    client = kind[service](topo.pod_ip(offset), services.PORTS[service], topo.netns_path(topo.CLIENT_NETNS), workers)
    if service == "postgres":
        client.setup()
    return client.start()


def identities(inventory: str, host: str, name: str) -> List[str]:
    """Who each process of the pod is: its command, uids, gids, supplementary groups and capabilities,
    sorted (a move must bring back the same list)."""
    fields = "Name|Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb"
    procs = "/sys/fs/cgroup/autopod/%s/cgroup.procs /sys/fs/cgroup/memory/autopod/%s/cgroup.procs" % (name, name)
    out = shell(inventory, host, "for p in $(cat %s 2>/dev/null); do "
                                 "grep -E '^(%s):' /proc/$p/status | tr -s '\\t ' ' ' | paste -sd';'; done"
                % (procs, fields))["stdout"]
    return sorted(line for line in out.splitlines() if line)


def ownership(inventory: str, host: str, rootfs: str, paths: List[str]) -> List[str]:
    """Owner, group and mode of each path inside a pod's rootfs."""
    out = shell(inventory, host, "cd %s && stat -c '%%n %%U %%G %%a' %s" % (rootfs, " ".join(paths)))["stdout"]
    return out.splitlines()


def shell(inventory: str, host: str, command: str) -> Dict[str, Any]:
    result = module("ansible.builtin.shell", {"_raw_params": command}, host=host, inventory=inventory)
    assert result.get("rc") == 0, result
    return result


def place(inventory: str, host: str, name: str, offset: int, mib: int = 16, storage: str = "copy",
          mounts: List[Dict[str, Any]] = (), env: Optional[Dict[str, str]] = None,
          write_mib_s: int = 0) -> Dict[str, Any]:
    """Create a counter pod on `host` with address pod_ip(offset); its rootfs is its own, or shared; with
    `write_mib_s`, it keeps writing its memory at that rate."""
    if storage == "shared":
        rootfs = os.path.join(SHARED_PODS, name)
        machine_path = os.path.join(topo.shared_source(), "pods", name)
        shutil.rmtree(machine_path, ignore_errors=True)
        os.makedirs(os.path.dirname(machine_path), exist_ok=True)
        subprocess.run(["cp", "-a", os.path.join(topo.shared_source(), "base-rootfs"), machine_path], check=True)
    else:
        rootfs = os.path.join(PODS_DIR, name)
        shell(inventory, host, "rm -rf %s && mkdir -p %s && cp -a %s %s" % (rootfs, PODS_DIR, base_rootfs(), rootfs))
    created = module("pod_create", {"name": name, "rootfs": rootfs, "mounts": list(mounts), "env": env or {},
                                    "command": ["/bin/counter", "7000", str(mib), "10", str(write_mib_s)],
                                    "network": {"address": "%s/%d" % (topo.pod_ip(offset), topo.PREFIXLEN),
                                                "bridge": topo.HOST_BRIDGE}},
                     host=host, inventory=inventory)
    assert created.get("changed") and created["pod"]["state"] == "running", created
    return created


def client(offset: int) -> StreamClient:
    """A TCP client of pod_ip(offset), on the lab's client host (its own namespace on the lab switch)."""
    return StreamClient(topo.pod_ip(offset), 7000, netns_path=topo.netns_path(topo.CLIENT_NETNS), timeout=30)


@contextlib.contextmanager
def watched(inventory: str, host: str, name: str, offset: int, lines: int = 10, **place_args: Any) -> Iterator[StreamClient]:
    """A counter pod placed on `host` (place's arguments) and a client that has read its first `lines`
    lines; the client is closed afterwards, whatever happened."""
    place(inventory, host, name, offset, **place_args)
    watcher = client(offset)
    try:
        watcher.wait_lines(lines)
        yield watcher
    finally:
        watcher.close()


def credentials() -> Dict[str, str]:
    """A move's credentials, made as the pod_move role makes them on the controller."""
    return make_credentials()


def receive(inventory: str, name: str, source: str, destination: str, credentials: Dict[str, str],
            storage: str = "copy",
            definition: Optional[Dict[str, Any]] = None, **extra: Any) -> Dict[str, Any]:
    """pod_receive on the destination (with the definition pod_info gives on the source, unless known)."""
    if definition is None:
        info = module("pod_info", {"name": name}, host=source, inventory=inventory)
        assert info["pods"], "pod %s is not on %s" % (name, source)
        definition = info["pods"][0]["definition"]
    args = {"definition": definition, "storage": storage, "credentials": credentials,
            "listen": topo.host_ip(topo.host_index(destination)), "image_dir": "%s/incoming/%s" % (IMAGES, name),
            "criu_path": CRIU, "home": source}
    args.update(extra)
    return module("pod_receive", args, host=destination, inventory=inventory)


def migrate(inventory: str, name: str, source: str, receiver: Dict[str, Any], credentials: Dict[str, str],
            storage: str = "copy", strategy: str = "auto", **extra: Any) -> Dict[str, Any]:
    args = {"name": name, "destination": receiver["address"], "port": receiver["port"], "credentials": credentials,
            "storage": storage, "strategy": strategy, "image_dir": "%s/outgoing/%s" % (IMAGES, name),
            "criu_path": CRIU}
    args.update(extra)
    return module("pod_migrate", args, host=source, inventory=inventory)


def frozen_phases(moved: Dict[str, Any]) -> Dict[str, float]:
    """A move's frozen time in the soak table's four columns, from pod_migrate's frozen_phases_ms: the dump,
    what crossed while frozen (the rootfs's second pass, the pages unless they follow the pod, the images),
    the restore on the destination, and its network attach and resume."""
    phases = moved.get("frozen_phases_ms", {})
    return {"dump": phases.get("dump", 0),
            "transfer": sum(phases.get(k, 0) for k in ("rootfs_delta", "pages", "images")),
            "restore": phases.get("restore", 0),
            "network_and_resume": phases.get("network", 0) + phases.get("resume", 0)}


def move(inventory: str, name: str, source: str, destination: str, storage: str = "copy",
         strategy: str = "auto", definition: Optional[Dict[str, Any]] = None, encryption: str = "tls",
         **extra: Any) -> Dict[str, Any]:
    """pod_receive on the destination, then pod_migrate on the source; the last result."""
    made = credentials()
    receiver = receive(inventory, name, source, destination, made, storage, definition, encryption=encryption)
    if receiver.get("failed"):
        return receiver
    return migrate(inventory, name, source, receiver, made, storage, strategy, encryption=encryption, **extra)


def where(inventory: str, name: str, hosts: List[str]) -> Dict[str, str]:
    """The state of pod `name` on each host that knows it."""
    found = {}
    for host in hosts:
        for pod in module("pod_info", {}, host=host, inventory=inventory)["pods"]:
            if pod["name"] == name:
                found[host] = pod["state"]
    return found


def connection_mss(inventory: str, host: str, name: str) -> List[int]:
    """The MSS of each established TCP connection of pod `name` on `host` (ss -ti in the pod's network namespace)."""
    info = module("pod_info", {"name": name}, host=host, inventory=inventory)
    listed = shell(inventory, host, "nsenter -t %d -n ss -tinH state established" % info["pods"][0]["init_pid"])
    return [int(mss) for mss in re.findall(r"\bmss:(\d+)", listed["stdout"])]


def running_on(inventory: str, name: str, hosts: List[str]) -> List[str]:
    """The hosts where pod `name` runs (a pod must never run on two)."""
    return sorted(host for host, state in where(inventory, name, hosts).items() if state == "running")


def remove_everywhere(inventory: str, hosts: List[str]) -> None:
    """Every pod on `hosts`, and the root filesystems tests gave them (pod_create state=absent keeps a rootfs,
    as it should: the copies a move left on a peer would make the next test's pod of that name refused there)."""
    for host in hosts:
        for pod in module("pod_info", {}, host=host, inventory=inventory).get("pods", []):
            module("pod_create", {"name": pod["name"], "state": "absent", "stop_timeout": 0},
                   host=host, inventory=inventory)
        shell(inventory, host, "rm -rf %s" % PODS_DIR)


def cap_pods_memory(inventory: str, host: str, slack: int) -> int:
    """The operator caps `host`'s pods (their parent cgroup, which a pod there made): room for `slack` bytes
    above what they use now. Returns the room pod_info now reports, what placement and pod_receive see."""
    shell(inventory, host, POD_CGROUP + "echo $(( $(cat $d/$u) + %d )) > $d/$l" % slack)
    return module("pod_info", {}, host=host, inventory=inventory)["host"]["memory_available"]


def uncap_pods_memory(inventory: str, host: str) -> None:
    shell(inventory, host, POD_CGROUP + "if [ $l = memory.max ]; then echo max; else echo -1; fi > $d/$l")
