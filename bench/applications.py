"""The paper's table on real applications: overhead, suspend and resume, a move, and a restart.

AutoPod's paper (Potter and Nieh, LISA 2005) claims that pods run real desktop and server applications
with little overhead, and that suspending and resuming them can be an order of magnitude faster than
starting the applications after a reboot, with no loss of data. For Redis (about 1 GiB of data),
PostgreSQL (a pgbench database of about 1 GiB, cache warm), nginx and a desktop session (Xvnc, a clock,
a counting terminal), all from Debian's packages, this prints in one run:

1. overhead: throughput in a pod against the same binary started directly on the same lab host
   (chroot into the same root filesystem, no namespaces), both measured from the lab's client host
   (redis-benchmark, pgbench select-only, wrk); the direct run loads the data first and leaves it on
   disk, and the pod starts from it; the desktop has no throughput to compare;
2. suspend and resume: pod_checkpoint and pod_restore on one host (module time);
3. a move: the longest wait of a client with requests in flight while the pod moves lab1 -> lab2 with
   post-copy (for the desktop: the pod's frozen time);
4. restart: from starting the application again (as after a reboot; the reboot itself, a minute or
   more on a real server, is not counted) until it serves at the rate it had before: Redis has loaded
   its RDB and answers at 90% of its rate, PostgreSQL starts with the page cache dropped and is timed
   until pgbench's select-only rate is back to 90%, nginx answers at 90% of its rate, the desktop has
   its windows again (with its state lost: its count starts from 1);
5. the ratio of (4) to (3).

Each result is printed as soon as it is measured, and the table before the lab is taken down.

Run as root after scripts/setup.sh:  .venv/bin/python bench/applications.py [--apps redis,postgres,nginx,desktop]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
import traceback
from typing import Callable, Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from bench import session  # noqa: E402
from lab import topology as topo  # noqa: E402
from tests.lab import pods  # noqa: E402
from tests.lab.test_desktop import count  # noqa: E402
from workloads import desktop, services  # noqa: E402

HOST, PEER = "lab1", "lab2"
OFFSETS = {"redis": 70, "postgres": 71, "nginx": 72, "desktop": 73}
DIRECT_PORTS = {"redis": 6380, "postgres": 5433, "nginx": 8080}
SIZES = {"redis": "6,000,000 keys of 100 bytes (about 1 GiB)", "postgres": "pgbench scale 64 (about 1 GiB)",
         "nginx": "24 static pages, 1-180 KiB", "desktop": "800x600 Xvnc, xclock, xterm"}
_pause = threading.Event()


def host_address() -> str:
    return topo.host_ip(topo.host_index(HOST))


# ---- throughput, per application ----

def warm_throughput(app: str, address: str, port: int) -> float:
    """The rate after a 5-second warm-up of the same load, so that the direct run and the pod are both
    measured with their caches (PostgreSQL's shared buffers, the page cache) filled."""
    throughput(app, address, port, seconds=5)
    return throughput(app, address, port)


def throughput(app: str, address: str, port: int, seconds: int = 10) -> float:
    """Requests per second under the application's load tool for about `seconds` (one second: a sample that
    tells when a restarted application is back to its rate)."""
    if app == "redis":  # redis-benchmark counts requests, not time: about 30,000 per second here
        out = pods.client_tool(["redis-benchmark", "-h", address, "-p", str(port), "-t", "get", "-n",
                                str(30000 * seconds), "-c", "8", "-r", "6000000", "--csv"])
        return float(re.findall(r'"GET","([\d.]+)"', out)[-1])
    if app == "postgres":
        out = pods.client_tool(["pgbench", "-h", address, "-p", str(port), "-U", "postgres", "-n", "-S", "-c", "4",
                                "-j", "2", "-T", str(seconds), "postgres"])
        return float(re.search(r"tps = ([\d.]+)", out).group(1))
    out = pods.client_tool(["wrk", "-t", "2", "-c", "8", "-d", "%ds" % seconds,
                            "http://%s:%d/page-3.html" % (address, port)])
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


# ---- the applications, in a pod or directly on the host ----

def pod_command(app: str) -> List[str]:
    command = list(services.COMMANDS[app][0])
    if app == "redis":
        command += ["--enable-debug-command", "yes"]
    if app == "postgres":
        command += ["-c", "shared_buffers=256MB"]
    return command


def copy_rootfs(inventory: str, app: str) -> str:
    rootfs = os.path.join(pods.PODS_DIR, "app-" + app)
    source = pods.desktop_rootfs() if app == "desktop" else pods.services_rootfs()
    pods.shell(inventory, HOST, "rm -rf %s && mkdir -p %s && cp -a %s %s" % (rootfs, pods.PODS_DIR, source, rootfs))
    return rootfs


def place(inventory: str, app: str, rootfs: str) -> Dict:
    name = "app-" + app
    address = "%s/%d" % (topo.pod_ip(OFFSETS[app]), topo.PREFIXLEN)
    if app == "desktop":
        args = desktop.pod_args(name, rootfs, address, topo.HOST_BRIDGE)
    else:
        args = services.pod_args(app, name, rootfs, address, topo.HOST_BRIDGE)
        args["command"] = pod_command(app)
    args["memory_max"] = "3G"
    created = pods.module("pod_create", args, host=HOST, inventory=inventory)
    assert created["pod"]["state"] == "running", created
    return created["pod"]["definition"]


def wait_until(what: str, ready: Callable[[], bool], timeout: float = 300) -> float:
    started = time.monotonic()
    while not ready():
        if time.monotonic() - started > timeout:
            raise TimeoutError("%s not within %d s" % (what, timeout))
        _pause.wait(0.05)
    return time.monotonic() - started


def answers(app: str, address: str, port: int) -> bool:
    try:
        if app == "redis":
            return "PONG" in pods.client_tool(["redis-cli", "-h", address, "-p", str(port), "PING"], 10)
        if app == "postgres":
            return "accepting" in pods.client_tool(["pg_isready", "-h", address, "-p", str(port)], 10)
        return "Requests/sec" in pods.client_tool(["wrk", "-t", "1", "-c", "1", "-d", "1s",
                                                   "http://%s:%d/" % (address, port)], 10)
    except subprocess.CalledProcessError:
        return False


def load_data(app: str, address: str, port: int) -> None:
    if app == "redis":
        out = pods.client_tool(["redis-cli", "-h", address, "-p", str(port), "DEBUG", "POPULATE", "6000000", "key",
                                "100"])
        assert out.strip() == "OK", "redis did not load the data: %s" % out
    elif app == "postgres":
        pods.client_tool(["pgbench", "-h", address, "-p", str(port), "-U", "postgres", "-i", "-q", "-s", "64",
                          "postgres"], 1200)


def direct_throughput(inventory: str, app: str, rootfs: str) -> float:
    """The same binary in the same rootfs, started on the host with chroot (no namespaces, no veth), with the
    data loaded; it is stopped afterwards and leaves the data on disk for the pod, which starts from it."""
    port, command, user = DIRECT_PORTS[app], pod_command(app), services.COMMANDS[app][1]
    if app == "redis":
        command[command.index("--port") + 1] = str(port)
    elif app == "postgres":
        command += ["-c", "port=%d" % port]
    else:
        command = ["/usr/sbin/nginx", "-g", "daemon off; error_log stderr;",
                   "-c", "/etc/nginx/direct.conf"]
        pods.shell(inventory, HOST, "sed 's/listen 80 default_server;/listen %d;/; s/listen \\[::\\]:80.*//' "
                                    "%s/etc/nginx/sites-available/default > %s/etc/nginx/direct-site && "
                                    "sed 's|include /etc/nginx/sites-enabled/\\*;|include /etc/nginx/direct-site;|' "
                                    "%s/etc/nginx/nginx.conf > %s/etc/nginx/direct.conf"
                   % (port, rootfs, rootfs, rootfs, rootfs))
    userspec = "--userspec=%s:%s " % (user, user) if user else ""
    quoted = " ".join("'%s'" % arg for arg in command)
    pid = pods.shell(inventory, HOST, "nohup setsid chroot %s%s %s >/tmp/direct-%s.log 2>&1 < /dev/null & echo $!"
                     % (userspec, rootfs, quoted, app))["stdout"].strip()
    try:
        wait_until("the directly started %s" % app, lambda: answers(app, host_address(), port), 120)
        load_data(app, host_address(), port)
        return warm_throughput(app, host_address(), port)
    finally:
        if app == "redis":
            pods.client_tool(["redis-cli", "-h", host_address(), "-p", str(port), "SAVE"], 600)
        pods.shell(inventory, HOST, "kill %s; while kill -0 %s 2>/dev/null; do sleep 0.1; done" % (pid, pid))


def restart_until_back(inventory: str, app: str, definition: Dict, rate: float) -> float:
    """Stop the pod, start it again as after a reboot, and time it until it serves at 90% of `rate`."""
    address, port = topo.pod_ip(OFFSETS[app]), services.PORTS.get(app, desktop.PORT)
    if app == "redis":
        pods.client_tool(["redis-cli", "-h", address, "SAVE"], 600)  # what a restart reloads
    stop = dict(definition, state="stopped")
    start = dict(definition, state="started")
    for args in (stop, start):
        args["memory_max"] = str(args["memory_max"])
    pods.module("pod_create", stop, host=PEER, inventory=inventory)
    if app == "postgres":
        pods.shell(inventory, PEER, "sync && echo 3 > /proc/sys/vm/drop_caches")
    started = time.monotonic()
    pods.module("pod_create", start, host=PEER, inventory=inventory)
    if app == "desktop":
        wait_until("the desktop's count", lambda: count(PEER, definition["rootfs"]) >= 1)
    else:
        wait_until("%s to answer" % app, lambda: answers(app, address, port))
        wait_until("%s back to its rate" % app, lambda: throughput(app, address, port, seconds=1) >= 0.9 * rate, 900)
    return (time.monotonic() - started) * 1000


def move_pause(inventory: str, app: str, definition: Dict) -> Dict:
    client = None if app == "desktop" else pods.service_client(app, OFFSETS[app])
    try:
        if client:
            client.wait_requests(100, timeout=120)
        started = time.monotonic()
        moved = pods.move(inventory, "app-" + app, HOST, PEER, strategy="post-copy", definition=definition)
        assert moved.get("result") == "moved", moved
        if client:
            client.wait_requests(100, timeout=120)
            client.stop()
            assert not client.errors() and not client.lost(), client.report()
        return {"pause_ms": round(client.longest_wait(started) * 1000) if client else moved["frozen_ms"],
                "frozen_ms": moved["frozen_ms"], "frozen_phases_ms": pods.frozen_phases(moved),
                "mib_between_hosts": {kind: round(count / 2**20, 1) for kind, count in moved["bytes"].items()}}
    finally:
        if client:
            client.close()


def measure(inventory: str, app: str) -> Dict:
    rootfs = copy_rootfs(inventory, app)
    result: Dict = {"app": app, "size": SIZES[app]}
    if app != "desktop":
        result["direct_rate"] = direct_throughput(inventory, app, rootfs)
    definition = place(inventory, app, rootfs)
    address, port = topo.pod_ip(OFFSETS[app]), services.PORTS.get(app, desktop.PORT)
    if app == "desktop":
        wait_until("the desktop's count", lambda: count(HOST, definition["rootfs"]) >= 2)
    else:
        wait_until("%s to answer" % app, lambda: answers(app, address, port))
        result["pod_rate"] = warm_throughput(app, address, port)
        result["overhead_pct"] = round(100 * (1 - result["pod_rate"] / result["direct_rate"]), 1)
    image = "%s/images/app-%s" % (pods.IMAGES, app)
    checkpointed = pods.module("pod_checkpoint", {"name": "app-" + app, "image_dir": image, "criu_path": pods.CRIU},
                               host=HOST, inventory=inventory)
    restored = pods.module("pod_restore", {"name": "app-" + app, "image_dir": image, "criu_path": pods.CRIU},
                           host=HOST, inventory=inventory)
    assert restored.get("changed"), restored
    result["checkpoint_ms"] = checkpointed["timings"]["total_ms"]
    result["restore_ms"] = restored["timings"]["total_ms"]
    result.update(move_pause(inventory, app, definition))
    rate = result.get("pod_rate", 0)
    if app == "postgres":
        amcheck = pods.pg_amcheck(address).strip()
        result["pg_amcheck"] = "clean" if not amcheck else amcheck[:300]
    result["restart_ms"] = round(restart_until_back(inventory, app, definition, rate))
    result["restart_over_move"] = round(result["restart_ms"] / max(result["pause_ms"], 1), 1)
    return result


def print_table(results: List[Dict]) -> None:
    print("| application | data | overhead in a pod | checkpoint ms | restore ms | move: client's longest wait ms "
          "| restart until serving at its rate ms | restart / move |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        overhead = "%.1f %% (%.0f vs %.0f/s)" % (r["overhead_pct"], r["pod_rate"], r["direct_rate"]) \
            if "overhead_pct" in r else "n/a"
        print("| %s | %s | %s | %.0f | %.0f | %d | %d | %.1fx |" % (
            r["app"], r["size"], overhead, r["checkpoint_ms"], r["restore_ms"], r["pause_ms"], r["restart_ms"],
            r["restart_over_move"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--apps", default="redis,postgres,nginx,desktop")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    if subprocess.run(["which", "wrk"], stdout=subprocess.DEVNULL, check=False).returncode:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    results: List[Dict] = []
    with session.measuring("applications", session.lab_cleanup) as measured:
        try:
            inventory = session.lab_up(2)
            for app in args.apps.split(","):
                try:
                    results.append(measure(inventory, app))
                    measured.add(app, results[-1])
                except Exception:  # the others still run; this one is reported
                    measured.failed = True
                    print("%s failed:\n%s" % (app, traceback.format_exc()), flush=True)
                pods.remove_everywhere(inventory, [HOST, PEER])
        finally:
            print("\nmachine: kernel %s, %d CPUs, lab hosts on one machine\n" % (os.uname().release, os.cpu_count()))
            print_table(results)
    return measured.exit_code


if __name__ == "__main__":
    sys.exit(main())
