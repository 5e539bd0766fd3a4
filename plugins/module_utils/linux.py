# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin wrappers around the Linux system calls the pods need.

Python before 3.12 has no os.unshare/os.setns and no version has mount or
pivot_root, so they are reached through ctypes. Everything here raises OSError
with the kernel's errno, like the os module does.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import select
import signal
from typing import Callable, Iterator, List, Optional, Sequence

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SHARED = 0x100000
MNT_DETACH = 0x2

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

_SYS_PIDFD_GETFD = 438  # the same number on every architecture (Linux 5.6)

# glibc has no pivot_root() wrapper; the syscall number depends on the architecture.
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}

_libc = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def _check(result: int, what: str) -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))
    return result


def _bytes(value: Optional[str]) -> Optional[bytes]:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    _check(_lib().unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_lib().setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source: Optional[str], target: str, fstype: Optional[str], flags: int = 0,
          data: Optional[str] = None) -> None:
    result = _lib().mount(_bytes(source), _bytes(target), _bytes(fstype),
                          ctypes.c_ulong(flags), _bytes(data))
    _check(result, "mount %s" % target)


def umount2(target: str, flags: int = 0) -> None:
    _check(_lib().umount2(_bytes(target), ctypes.c_int(flags)), "umount %s" % target)


def pivot_root(new_root: str, put_old: str) -> None:
    number = _SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(0, "pivot_root: unsupported architecture %s" % platform.machine())
    _check(_lib().syscall(ctypes.c_long(number), _bytes(new_root), _bytes(put_old)), "pivot_root")


def prctl(option: int, value: int) -> None:
    _check(_lib().prctl(ctypes.c_int(option), ctypes.c_ulong(value), ctypes.c_ulong(0),
                        ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl")


def pidfd_getfd(pidfd: int, target_fd: int) -> int:
    """A duplicate, in this process, of descriptor `target_fd` of the process behind `pidfd`."""
    return _check(_lib().syscall(ctypes.c_long(_SYS_PIDFD_GETFD), ctypes.c_int(pidfd), ctypes.c_int(target_fd),
                                 ctypes.c_uint(0)), "pidfd_getfd")


@contextlib.contextmanager
def inside_netns(path: str) -> Iterator[None]:
    """Run the body with this thread in the network namespace at `path`, then come back.

    Sockets keep the namespace they were created in, so a socket made in the body
    works in that namespace afterwards.
    """
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        setns(target, CLONE_NEWNET)
        yield
    finally:
        setns(home, CLONE_NEWNET)
        os.close(target)
        os.close(home)


def process_start_time(pid: int, ended_too: bool = False) -> Optional[int]:
    """Start time of a process in clock ticks since boot, or None if it does not exist (nor, unless
    `ended_too`, if it has ended and waits for its parent to reap it: a zombie).

    A PID alone is not an identity (PIDs are reused); PID plus start time is.
    """
    try:
        with open("/proc/%d/stat" % pid, "rb") as stat:
            data = stat.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] == b"Z" and not ended_too:
        return None
    return int(fields[19])


def process_alive(pid: Optional[int], start_time: Optional[int]) -> bool:
    return bool(pid) and start_time is not None and process_start_time(pid) == start_time


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait until a process (not necessarily our child) has exited; True if it has."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready = select.select([fd], [], [], max(timeout, 0))[0]
        return bool(ready)
    finally:
        os.close(fd)


def stop_process(pid: int, start_time: int, timeout: float) -> str:
    """SIGTERM, then SIGKILL after `timeout` seconds. Returns how it ended."""
    if not process_alive(pid, start_time):
        return "already-stopped"
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        if wait <= 0 and sig == signal.SIGTERM:
            continue
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return "stopped"
        if wait_for_exit(pid, wait):
            return "terminated" if sig == signal.SIGTERM else "killed"
    raise OSError(0, "process %d did not exit after SIGKILL" % pid)


def unmount_under(path: str) -> List[str]:
    """Detach every mount at or below `path`, deepest first.

    A CRIU that was killed leaves its cgroup yard mounted in its work directory;
    removing that directory with the cgroup hierarchies still mounted in it would
    delete cgroups, so it is unmounted first.
    """
    prefix = os.path.realpath(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4].replace("\\040", " ") for line in handle]
    below = sorted((p for p in points if (p + "/").startswith(prefix)), key=len, reverse=True)
    for point in below:
        umount2(point, MNT_DETACH)
    return below


def daemonize(body: Callable[[int], None], log_path: Optional[str] = None, keep_fds: Sequence[int] = ()) -> bytes:
    """Run `body(report_fd)` in a detached daemon; returns what it writes to `report_fd` before closing it.

    Double fork and a new session, so the daemon outlives its caller (an Ansible module, a test) and
    is nobody's child but init's or a subreaper's; cwd /, stdin /dev/null, stdout and stderr to
    `log_path` (or /dev/null), every other descriptor closed but `keep_fds`: Ansible waits for the
    module's output pipes to close, so nothing of the module may stay open in the daemon.
    """
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read_fd)
            os.setsid()
            if os.fork() == 0:
                os.chdir("/")
                devnull = os.open("/dev/null", os.O_RDWR)
                out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if log_path else devnull
                os.dup2(devnull, 0)
                os.dup2(out, 1)
                os.dup2(out, 2)
                kept = sorted(set(keep_fds) | {write_fd})
                for low, high in zip([3] + [fd + 1 for fd in kept], kept + [65536]):
                    os.closerange(low, high)
                try:
                    body(write_fd)
                finally:
                    os._exit(0)
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(child, 0)
    with os.fdopen(read_fd, "rb") as reader:
        return reader.read()


def report_pid(body: Callable[[], None]) -> Callable[[int], None]:
    """A daemon body that reports its PID (see daemonize), then runs `body()`."""
    def run(report_fd: int) -> None:
        os.write(report_fd, str(os.getpid()).encode())
        os.close(report_fd)
        body()
    return run


def boot_id() -> str:
    with open("/proc/sys/kernel/random/boot_id") as handle:
        return handle.read().strip()
