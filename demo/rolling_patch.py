"""The demo: a rolling patch of three lab hosts while their services keep serving.

On the lab (three machine-like hosts reached over SSH, scripts/lab), each host has a package from the
lab's own apt repository that has a security update whose installation requires a reboot, as a
kernel update does. Pods run on the hosts: Redis (Debian's redis-server as user redis, in a root
filesystem built with debootstrap), with four writers whose SETs are always in flight and which
afterwards read back every acknowledged write; and two counter pods streaming numbered lines to
clients that count every gap. A client that fails says so in one line; the demo then fails.
Then `ansible-playbook playbooks/rolling_patch.yml` runs over SSH, exactly as against real hosts.
It ends with the run's summary and what the clients saw.

    scripts/demo.sh            # as root; leaves nothing behind
    scripts/demo.sh --keep     # leaves the lab up (scripts/lab down removes it)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from lab import aptrepo, control  # noqa: E402
from lab import topology as topo  # noqa: E402
from tests.lab import pods  # noqa: E402
from tests.support.cleanup import adopt_orphans, reap_orphans  # noqa: E402

HOSTS = ["lab1", "lab2", "lab3"]
REPORTS = "/tmp/autopod-demo-reports"
KERNEL = [aptrepo.Package("autopod-demo-kernel", v, "autopod-lab-security", needs_reboot=True) for v in ("1.0", "1.1")]
APP = [aptrepo.Package("autopod-demo-app", v, "autopod-lab") for v in ("1.0", "1.1")]


def say(text: str) -> None:
    print("\n== %s" % text, flush=True)


def prepare_hosts(inventory: str) -> None:
    aptrepo.publish(topo.repo_dir(), [KERNEL[0], APP[0]])
    for host in HOSTS:
        pods.shell(inventory, host, "apt-get update -q && apt-get install -y -q autopod-demo-kernel=1.0 "
                                    "autopod-demo-app=1.0 && rm -f /var/run/reboot-required*")
    aptrepo.publish(topo.repo_dir(), KERNEL + APP)


def start_redis(inventory: str) -> None:
    pods.place_service(inventory, "lab1", "redis", "redis", 50)


def redis_verdict(writer) -> bool:
    """One line on the Redis writers: every acknowledged write read back, or what went wrong."""
    writer.stop()
    redis = writer.report()
    try:
        lost = len(writer.lost())
    except (OSError, ConnectionError, RuntimeError) as exc:
        print("redis: FAILED: the writes could not be read back: %s: %s" % (type(exc).__name__, exc))
        return False
    print("redis: %d acknowledged writes, %d lost, errors: %s, slowest write %s ms"
          % (redis["acknowledged"], lost, "; ".join(redis["errors"]) or "none", redis["longest_wait_ms"]))
    return not lost and not redis["errors"]


def stream_verdict(name: str, watcher) -> bool:
    """One line on a counter's client: gaps, repeats, resets, the longest pause, and its memory check."""
    try:
        watcher.wait_lines(10)
        verdict = watcher.verify()
    except (OSError, ConnectionError, TimeoutError) as exc:
        verdict = "FAILED: %s: %s" % (type(exc).__name__, exc)
    report = watcher.report()
    print("%s: %d lines, gaps %d, repeats %d, resets %s, longest pause %.0f ms (ended %s), memory %s"
          % (name, report["lines"], len(report["gaps"]), len(report["repeats"]), report["error"] or "none",
             report["max_pause_ms"], time.strftime("%H:%M:%S", time.gmtime(report["max_pause_ended_at"])), verdict))
    return not report["gaps"] and not report["repeats"] and not report["error"] and verdict.startswith("verify ok")


def main() -> int:
    keep = "--keep" in sys.argv
    adopt_orphans()
    say("building the lab: three hosts with their own root, PID and network namespaces and sshd")
    control.down()
    inventory = control.up(len(HOSTS))
    print(open(inventory).read())
    watchers, writer = {}, None
    try:
        say("installing autopod-demo-kernel 1.0 on every host, then publishing 1.1 (a security update "
            "that requires a reboot)")
        prepare_hosts(inventory)
        say("starting pods: redis on lab1, counters on lab2 and lab3, and their clients")
        start_redis(inventory)
        pods.place(inventory, "lab2", "stream", 51, mib=64)
        pods.place(inventory, "lab3", "stream2", 52, mib=16)
        writer = pods.service_client("redis", 50)
        watchers = {"stream": pods.client(51), "stream2": pods.client(52)}
        for watcher in watchers.values():
            watcher.wait_lines(20)

        say("ansible-playbook playbooks/rolling_patch.yml")
        started = time.monotonic()
        run = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", inventory,
                              os.path.join(ROOT, "playbooks", "rolling_patch.yml"),
                              "-e", json.dumps({"autopod_report_dir": REPORTS})],
                             cwd=ROOT, env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")),
                             check=False)
        total = time.monotonic() - started

        say("what the clients saw")
        clients_ok = True
        for name, watcher in watchers.items():  # before Redis is read back, which keeps this process busy
            clients_ok &= stream_verdict(name, watcher)
        clients_ok &= redis_verdict(writer)
        print("rolling patch of %d hosts took %.0f s" % (len(HOSTS), total))
        ok = run.returncode == 0 and clients_ok
        print("\nRESULT: %s" % ("every host patched and rebooted; zero resets, zero lost writes"
                                if ok else "FAILED (see above)"))
        return 0 if ok else 1
    finally:
        if writer:
            writer.close()
        for watcher in watchers.values():
            watcher.close()
        if not keep:
            pods.remove_everywhere(inventory, HOSTS)
            control.down()
        reap_orphans()


if __name__ == "__main__":
    sys.exit(main())
