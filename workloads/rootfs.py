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


def build_debian_rootfs(path: str, packages: str, suite: str = "bookworm") -> str:
    """A minimal Debian root filesystem with `packages` (comma separated), built once with debootstrap."""
    if os.path.exists(os.path.join(path, "etc", "debian_version")):
        return path
    partial = path + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    subprocess.run(["debootstrap", "--variant=minbase", "--include=" + packages, suite, partial], check=True,
                   stdout=subprocess.DEVNULL)
    os.rename(partial, path)
    return path
