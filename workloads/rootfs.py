"""Build the small root filesystem the test and benchmark pods run: busybox plus the counter workload."""

from __future__ import annotations

import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
COUNTER_SOURCE = os.path.join(HERE, "counter.c")
BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "sleep", "cat", "echo", "ls", "true", "false", "kill", "ps", "cp", "rm", "mkdir")


def build_counter(dest: str) -> str:
    """Compile the counter workload statically, so it runs in any rootfs."""
    subprocess.run(["gcc", "-O2", "-static", "-Wall", "-o", dest, COUNTER_SOURCE], check=True)
    return dest


def build_rootfs(path: str) -> str:
    """A rootfs with busybox (its shell and a few applets) and /bin/counter. Rebuilt from scratch."""
    shutil.rmtree(path, ignore_errors=True)
    for sub in ("bin", "proc", "dev", "tmp", "etc", "data"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(path, "bin", "busybox"))
    for applet in APPLETS:
        os.symlink("busybox", os.path.join(path, "bin", applet))
    build_counter(os.path.join(path, "bin", "counter"))
    return path
