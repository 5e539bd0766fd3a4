"""A lab host: a machine-like process tree, kept running (and rebooted) by a keeper daemon.

Each lab host has its own PID, mount, UTS and IPC namespaces and the network namespace the lab
wired to its switch. Its root is an overlay over the machine's / with a per-host upper directory,
so /etc, /var/lib (the package database, /var/lib/autopod) and everything it writes are its own;
/run, /tmp and /dev/shm are fresh tmpfs at each boot. PID 1 is `_init`: it records a new boot id,
starts sshd, reaps every orphan (pod supervisors among them), and on SIGUSR1 (reboot) or SIGTERM
(halt) kills everything in the host and exits; the keeper then boots the host again or stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from typing import Callable, List, Optional, Tuple

from ansible_collections.autopod.autopod.plugins.module_utils import linux
from lab import aptrepo
from lab import topology as topo

CLONE_NEWCGROUP = 0x02000000
_HOST_NAMESPACES = (linux.CLONE_NEWNS | linux.CLONE_NEWPID | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC
                    | CLONE_NEWCGROUP)
CGROUP_ROOT = "/sys/fs/cgroup"
LAB_CGROUP = "autopod-lab"
_MOUNT_FLAGS = {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "seclabel"}


def cgroup_hierarchies() -> List[Tuple[str, str, str]]:
    """(mount point, filesystem type, mount options) of the machine's cgroup hierarchies."""
    found = []
    with open("/proc/self/mounts") as handle:
        for line in handle:
            _source, point, fstype, options = line.split()[:4]
            if fstype in ("cgroup", "cgroup2") and point.startswith(CGROUP_ROOT):
                found.append((point, fstype, ",".join(o for o in options.split(",") if o not in _MOUNT_FLAGS)))
    return found


def _join_host_cgroups(host: str) -> None:
    """Put this process in autopod-lab/<host> of every hierarchy, so that the host's own cgroup
    namespace has it as root: pods on different lab hosts then have separate cgroups, as on machines."""
    for point, _fstype, _options in cgroup_hierarchies():
        path = point
        for part in (LAB_CGROUP, host):
            path = os.path.join(path, part)
            os.makedirs(path, exist_ok=True)
            for knob in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset refuses tasks until these are set
                if os.path.exists(os.path.join(path, knob)):
                    with open(os.path.join(os.path.dirname(path), knob)) as parent:
                        value = parent.read().strip()
                    with open(os.path.join(path, knob), "w") as child:
                        child.write(value)
        with open(os.path.join(path, "cgroup.procs"), "w") as procs:
            procs.write("0")


def _mount_cgroups(root: str) -> None:
    """Fresh cgroup mounts inside the host's cgroup namespace: they show only the host's subtree."""
    base = os.path.join(root, CGROUP_ROOT.lstrip("/"))
    linux.mount("tmpfs", base, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, "mode=755")
    for point, fstype, options in cgroup_hierarchies():
        target = os.path.join(root, point.lstrip("/"))
        os.makedirs(target, exist_ok=True)
        linux.mount("cgroup", target, fstype, linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, options or None)


def remove_cgroups() -> None:
    """Remove autopod-lab/ from every hierarchy, deepest directories first (they must be empty of tasks)."""
    for point, _fstype, _options in cgroup_hierarchies():
        top = os.path.join(point, LAB_CGROUP)
        for directory, _dirs, _files in sorted(os.walk(top), key=lambda entry: -entry[0].count(os.sep)):
            try:
                os.rmdir(directory)
            except OSError:
                pass


class _Shutdown(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _log(host: str, message: str) -> None:
    with open(os.path.join(topo.host_dir(host), "keeper.log"), "a") as handle:
        handle.write("%s %s\n" % (time.strftime("%H:%M:%S"), message))


def mount_overlay(host: str) -> str:
    """Overlay the machine's / with this host's upper directory, at the host's root; returns it.

    Both flavours of lab host start from this: a namespace host pivots into it, a QEMU guest gets it
    over 9p (its keeper mounts it in a mount namespace of its own)."""
    base = topo.host_dir(host)
    root = os.path.join(base, "root")
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount("overlay", root, "overlay", 0, "lowerdir=/,upperdir=%s/upper,workdir=%s/work" % (base, base))
    return root


def mount_tmpfs_dirs(root: str) -> None:
    """/run, /tmp and /dev/shm: fresh at every boot, as on a machine."""
    for tmp in ("run", "tmp", "dev/shm"):
        os.makedirs(os.path.join(root, tmp), exist_ok=True)
        linux.mount("tmpfs", os.path.join(root, tmp), "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=1777")
    os.chmod(os.path.join(root, "run"), 0o755)


def _mount_root(host: str) -> str:
    """The namespace host's root: the overlay, the machine's /dev, and its own private filesystems."""
    root = mount_overlay(host)
    linux.mount("/dev", os.path.join(root, "dev"), None, linux.MS_BIND | linux.MS_REC)
    linux.mount("sysfs", os.path.join(root, "sys"), "sysfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    _mount_cgroups(root)
    linux.mount("proc", os.path.join(root, "proc"), "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    mount_tmpfs_dirs(root)
    bind_shared(root)
    return root


def bind_shared(root: str) -> None:
    """The lab's shared directory (its apt repository among others), at the same path on every host."""
    shared = os.path.join(root, topo.SHARED_DIR.lstrip("/"))
    os.makedirs(shared, exist_ok=True)
    linux.mount(topo.shared_source(), shared, None, linux.MS_BIND)


def _pivot(root: str) -> None:
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount2(".", linux.MNT_DETACH)
    os.chdir("/")


def _start_sshd(host: str) -> subprocess.Popen:
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    log = open("/var/log/autopod-lab-sshd.log", "ab")
    return subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", os.path.join(topo.host_dir(host), "sshd_config")],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True)


def run_init(host: str, boot: Callable[[], None], shut_down: Callable[[int], None],
             log: Callable[[str], None]) -> None:
    """PID 1 of a lab host of either flavour: `boot` makes its filesystems (and a guest's network);
    then it records a boot id, starts sshd and reaps orphans until asked to reboot (SIGUSR1) or halt
    (SIGTERM), kills everything and calls `shut_down` with the exit code its keeper understands.
    A host that cannot boot says why through `log` and halts."""
    code = topo.HALT_EXIT
    try:
        boot()
        socket.sethostname(host)
        for directory in ("/run/lock", "/run/netns", os.path.dirname(topo.BOOT_ID_FILE)):
            os.makedirs(directory, exist_ok=True)
        with open(topo.BOOT_ID_FILE, "w") as handle:
            handle.write(str(uuid.uuid4()) + "\n")
        aptrepo.configure_host_apt(topo.SHARED_REPO)

        def request(code: int):
            def handler(_signum, _frame):
                raise _Shutdown(code)
            return handler
        signal.signal(signal.SIGUSR1, request(topo.REBOOT_EXIT))
        signal.signal(signal.SIGTERM, request(topo.HALT_EXIT))
        _start_sshd(host)
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                signal.pause()
    except _Shutdown as shutdown:
        code = shutdown.code
    except Exception as exc:  # a host that cannot boot says why in the keeper log
        log("init failed: %r" % exc)
        code = 1
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGKILL)  # PID 1 of a namespace: everything in it but itself
    with contextlib.suppress(ChildProcessError):
        while True:
            os.waitpid(-1, 0)
    shut_down(code)


def _init(host: str) -> None:
    """PID 1 of a namespace host. Never returns."""
    run_init(host, lambda: _pivot(_mount_root(host)), os._exit, lambda message: _log(host, message))


def _boot(host: str) -> int:
    """Start the host's PID 1 in fresh namespaces; returns its PID (reparented to the keeper)."""
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read_fd)
            net = os.open(topo.netns_path(topo.host_netns(host)), os.O_RDONLY)
            linux.setns(net, linux.CLONE_NEWNET)
            os.close(net)
            _join_host_cgroups(host)
            linux.unshare(_HOST_NAMESPACES)
            init = os.fork()
            if init == 0:
                os.close(write_fd)
                _init(host)
            os.write(write_fd, str(init).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(child, 0)
    with os.fdopen(read_fd) as reader:
        return int(reader.read() or 0)


def hold_file(host: str) -> str:
    return os.path.join(topo.host_dir(host), "hold")


def _wait_while_held(host: str) -> None:
    """A host with a hold file does not come back from its reboot until the file goes (a test's broken host)."""
    pause = threading.Event()
    if os.path.exists(hold_file(host)):
        _log(host, "held down")
    while os.path.exists(hold_file(host)):
        pause.wait(0.2)


def keep(host: str, boot: Optional[Callable[[str], int]] = None,
         rebooted: Optional[Callable[[int], bool]] = None) -> None:
    """The keeper: boot the host, wait for it, boot it again after a reboot. Runs as a daemon.

    `boot` starts the host and returns the PID to wait for (a namespace host's init, a guest's
    QEMU); `rebooted` tells from that process's exit code whether the host asked to come back."""
    boot = boot or _boot
    rebooted = rebooted or (lambda code: code == topo.REBOOT_EXIT)
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    state_file = os.path.join(topo.host_dir(host), "init.json")
    boots = 0
    while True:
        init = boot(host)
        boots += 1
        with open(state_file, "w") as handle:
            json.dump({"init_pid": init, "keeper_pid": os.getpid(), "booted_at": time.time(), "boots": boots},
                      handle)
        _log(host, "booted, PID %d" % init)
        code = None
        while code is None:
            pid, status = os.waitpid(-1, 0)
            if pid == init:
                code = os.waitstatus_to_exitcode(status)
        _log(host, "exited with %d" % code)
        if not rebooted(code):
            os.unlink(state_file)
            return
        _wait_while_held(host)


def spawn_keeper(host: str, keeper_main: Callable[[str], None] = keep) -> int:
    """Start `keeper_main(host)` as a daemon; returns its PID."""
    def run() -> None:
        try:
            keeper_main(host)
        except Exception as exc:  # a keeper that cannot start its host says why
            _log(host, "keeper failed: %r" % exc)
    return int(linux.daemonize(linux.report_pid(run)))


def init_pid(host: str) -> int:
    try:
        with open(os.path.join(topo.host_dir(host), "init.json")) as handle:
            return int(json.load(handle)["init_pid"])
    except (OSError, ValueError, KeyError):
        return 0
