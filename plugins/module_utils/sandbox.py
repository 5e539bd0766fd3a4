# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start a pod's first process in its own namespaces and root filesystem.

The layout follows what makes a pod checkpointable (docs/design.md, "The pod"): the
first process is a session leader inside its PID namespace, its standard streams
point at files inside the pod, no host descriptor survives exec, the root is a
self-bind of the rootfs with proc, a tmpfs /dev (with its own devpts) and a tmpfs /tmp, reached with
pivot_root, and host directories come in as bind mounts CRIU can name as external.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import traceback
from typing import Dict, List

from ansible_collections.autopod.autopod.plugins.module_utils import linux
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.pod import PodSpec

CONSOLE_DIR = "/.autopod"
CONSOLE_LOG = CONSOLE_DIR + "/console.log"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
_DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
              ("stderr", "/proc/self/fd/2"))
_POD_NAMESPACES = linux.CLONE_NEWPID | linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC


def _inside(rootfs: str, path: str) -> str:
    return os.path.join(rootfs, path.lstrip("/"))


def _ensure_mountpoint(target: str, like_file: bool) -> None:
    if os.path.lexists(target):
        return
    if like_file:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    else:
        os.makedirs(target, exist_ok=True)


def _populate_dev(dev: str) -> None:
    for name, major, minor in _DEVICES:
        os.mknod(os.path.join(dev, name), 0o666 | 0o020000, os.makedev(major, minor))
        os.chmod(os.path.join(dev, name), 0o666)
    for name, target in _DEV_LINKS:
        os.symlink(target, os.path.join(dev, name))
    os.mkdir(os.path.join(dev, "shm"), 0o1777)
    os.chmod(os.path.join(dev, "shm"), 0o1777)
    # The pod's own devpts instance, so terminals (an xterm, an sshd session) work and CRIU dumps their
    # ptys with the pod; /dev/ptmx points at the instance's multiplexer, as in any container.
    os.mkdir(os.path.join(dev, "pts"), 0o755)
    linux.mount("devpts", os.path.join(dev, "pts"), "devpts", linux.MS_NOSUID | linux.MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))


def _prepare_root(spec: PodSpec) -> None:
    """Build the pod's mount tree and pivot_root into it (runs inside the new mount namespace)."""
    rootfs = spec.rootfs
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount(rootfs, rootfs, None, linux.MS_BIND | linux.MS_REC)
    for mount in spec.mounts:
        target = _inside(rootfs, mount.target)
        _ensure_mountpoint(target, like_file=not os.path.isdir(mount.source))
        linux.mount(mount.source, target, None, linux.MS_BIND | linux.MS_REC)
        if mount.readonly:
            linux.mount(None, target, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
    for sub in ("proc", "dev", "tmp", CONSOLE_DIR):
        os.makedirs(_inside(rootfs, sub), exist_ok=True)
    os.chmod(_inside(rootfs, CONSOLE_DIR), 0o700)
    linux.mount("proc", _inside(rootfs, "proc"), "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    linux.mount("tmpfs", _inside(rootfs, "dev"), "tmpfs", linux.MS_NOSUID, "mode=755,size=1m")
    _populate_dev(_inside(rootfs, "dev"))
    linux.mount("tmpfs", _inside(rootfs, "tmp"), "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=1777")
    # pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves only the pod's.
    os.chdir(rootfs)
    linux.pivot_root(".", ".")
    linux.umount2(".", linux.MNT_DETACH)
    os.chdir("/")


def _redirect_stdio() -> None:
    stdin = os.open("/dev/null", os.O_RDONLY)
    out = os.open(CONSOLE_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for fd, source in ((0, stdin), (1, out), (2, out)):
        os.dup2(source, fd)
    os.close(stdin)
    os.close(out)


def _read_table(path: str) -> List[List[str]]:
    """The entries of a colon-separated account file (/etc/passwd, /etc/group); none if it is missing."""
    try:
        with open(path) as handle:
            return [line.rstrip("\n").split(":") for line in handle if line.strip() and not line.startswith("#")]
    except FileNotFoundError:
        return []


def _lookup(table: List[List[str]], key: str, what: str) -> List[str]:
    for entry in table:
        if len(entry) > 3 and (entry[0] == key or (key.isdigit() and entry[2] == key)):
            return entry
    if key.isdigit():
        return [key, "", key, key if what == "user" else "", "", "/", ""]
    raise AutopodError("%s %r is not in the pod's /etc/%s" % (what, key, "passwd" if what == "user" else "group"))


def _drop_privileges(spec: PodSpec, env: Dict[str, str]) -> None:
    """Become the pod's user and group, named in the pod's own /etc/passwd and /etc/group (read after
    pivot_root, so they are the pod's), with the user's supplementary groups, as login(1) would."""
    if not spec.user and not spec.group:
        return
    groups = _read_table("/etc/group")
    user = _lookup(_read_table("/etc/passwd"), spec.user, "user") if spec.user else None
    gid = int(_lookup(groups, spec.group, "group")[2]) if spec.group else int(user[3] or 0)
    supplementary = [int(g[2]) for g in groups if user and len(g) > 3 and user[0] in g[3].split(",")]
    os.setgroups(sorted(set(supplementary + [gid])))
    os.setgid(gid)
    if user:
        env.setdefault("HOME", user[5] or "/")
        env.setdefault("USER", user[0])
        os.setuid(int(user[2]))


def _exec_init(spec: PodSpec, report_fd: int) -> None:
    """Become the pod's first process. Never returns: exec or report the error and exit."""
    try:
        os.setsid()
        _prepare_root(spec)
        socket.sethostname(spec.hostname)
        os.chdir(spec.workdir)
        _redirect_stdio()
        # Python ignores SIGPIPE and SIGXFSZ; an ignored signal survives exec, a handler does not.
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        env = dict(spec.env)
        env.setdefault("PATH", DEFAULT_PATH)
        env.setdefault("HOSTNAME", spec.hostname)
        _drop_privileges(spec, env)
        if spec.no_new_privs:  # setuid files and file capabilities give nothing more after this exec
            linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
        os.closerange(3, report_fd)  # report_fd itself is close-on-exec
        os.execvpe(spec.command[0], spec.command, env)
    except BaseException as exc:  # report anything, then leave without running Python cleanup
        _report(report_fd, {"error": "cannot start %s in pod %s: %s" % (spec.command[0], spec.name, exc)})
    os._exit(127)


def _report(fd: int, message: dict) -> None:
    os.write(fd, (json.dumps(message) + "\n").encode())


def _read_reports(fd: int) -> List[dict]:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    return [json.loads(line) for line in b"".join(chunks).decode().splitlines() if line.strip()]


def launch(spec: PodSpec, netns_path: str, cgroup_procs: str) -> int:
    """Start the pod's first process; returns its PID (as seen from the host).

    Runs in the supervisor, which is a child subreaper: the intermediate process
    that creates the namespaces exits at once, and the pod's first process is
    reparented to the supervisor, which then waits for it.
    """
    read_fd, write_fd = os.pipe()  # both close-on-exec: exec success shows as EOF
    child = os.fork()
    if child == 0:
        try:
            os.close(read_fd)
            with open(cgroup_procs, "w") as procs:
                procs.write("0")
            net = os.open(netns_path, os.O_RDONLY)
            linux.setns(net, linux.CLONE_NEWNET)
            os.close(net)
            linux.unshare(_POD_NAMESPACES)
            init = os.fork()  # the first child after unshare(CLONE_NEWPID) is PID 1 of the pod
            if init == 0:
                _exec_init(spec, write_fd)
            _report(write_fd, {"pid": init})
        except BaseException:
            _report(write_fd, {"error": "cannot create the namespaces of pod %s: %s"
                               % (spec.name, traceback.format_exc(limit=1).strip())})
        os._exit(0)
    os.close(write_fd)
    os.waitpid(child, 0)
    reports = _read_reports(read_fd)
    os.close(read_fd)
    errors = [r["error"] for r in reports if "error" in r]
    pids = [r["pid"] for r in reports if "pid" in r]
    if errors or not pids:
        for pid in pids:  # it exited after reporting; we are its reaper now
            os.waitpid(pid, 0)
        raise AutopodError("; ".join(errors) or "the pod's first process did not start")
    return pids[0]
