# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CRIU driver: find the binary, judge its version against the kernel, turn option objects into
its command lines (argument lists, never shell strings) and run them through commands.py.

Every option AutoPod gives CRIU is a field of DumpOptions, RestoreOptions or PageServerOptions (as
runc keeps them in one CriuOpts struct); the *_argv functions are the only places that turn them
into arguments. Results carry the command that ran (`Criu.last_argv`).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.autopod.autopod.plugins.module_utils import commands
from ansible_collections.autopod.autopod.plugins.module_utils.criu_images import ImageFormatError, parse_stats
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.pod import MountSpec

NET_KEY = "autopod-net"
LOG_LEVEL = "-v4"
LAZY_PAGES_SOCKET = "lazy-pages.socket"  # made by `criu lazy-pages` in its work directory (criu/uffd.c)
# CRIU lives in sbin directories, which a non-login PATH may lack.
_SEARCH_PATH = ":".join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
# (kernel from, CRIU needed, applies only with TCP connections, why): docs/design.md, "CRIU versions".
KERNEL_RULES = (
    ((6, 13), (4, 1), False,
     "kernels from 6.13 changed the vDSO/vvar layout and CRIU before 4.1 stops with "
     "'vdso: Failed to fill self vdso symtable'"),
    ((6, 16), (4, 2), True,
     "on kernels from 6.16 CRIU before 4.2 cannot dump TCP sockets "
     "('sockets: Can't get 1:16 opt: Operation not supported')"),
)
INSTALL_HINT = ("install a newer CRIU (Debian 13 has 4.1, Debian unstable 4.2; the autopod.autopod.criu role "
                "with criu_install=private_root installs 4.2 beside an older distribution) "
                "and point criu_path at it")


def mount_key(index: int) -> str:
    return "autopod-mnt-%d" % index


def parse_version(text: str) -> Tuple[int, ...]:
    match = re.search(r"Version:\s*(\d+(?:\.\d+)*)", text)
    if not match:
        raise AutopodError("cannot read the CRIU version from %r" % text.strip()[:200])
    return tuple(int(part) for part in match.group(1).split("."))


def parse_kernel(release: str) -> Tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", release)
    if not match:
        raise AutopodError("cannot read the kernel version from %r" % release)
    return int(match.group(1)), int(match.group(2))


def version_string(version: Sequence[int]) -> str:
    return ".".join(str(part) for part in version)


def compatibility_problems(version: Sequence[int], kernel_release: str, tcp: bool) -> List[str]:
    """What stops this CRIU from working on this kernel (empty when nothing does)."""
    kernel = parse_kernel(kernel_release)
    problems = []
    for since, needed, tcp_only, why in KERNEL_RULES:
        if kernel >= since and tuple(version[:2]) < needed and (tcp or not tcp_only):
            problems.append("CRIU %s is too old for kernel %s: %s; %s %s or newer is needed"
                            % (version_string(version), kernel_release, why, "CRIU", version_string(needed)))
    return problems


@dataclass
class DumpOptions:
    """A `criu dump` (or, with pre_dump, `criu pre-dump`) of a pod's process tree."""

    pid: int
    images_dir: str
    work_dir: str
    netns_inode: int  # the pod's network namespace is external: it outlives the dump
    mounts: Sequence[MountSpec] = ()
    pre_dump: bool = False
    tcp_established: bool = True
    leave_running: bool = False
    leave_stopped: bool = False  # keep the frozen tree for the caller to kill or revive (a live move)
    lazy_pages: bool = False  # post-copy: leave memory behind and serve it through page_socket
    page_socket: Optional[int] = None  # a connected socket the pages go through (--ps-socket)
    parent: Optional[str] = None  # pre-copy: the previous round's images, relative to images_dir
    status_fd: Optional[int] = None  # CRIU writes a byte here once everything but lazy memory is dumped

    @property
    def action(self) -> str:
        return "pre-dump" if self.pre_dump else "dump"

    @property
    def log_name(self) -> str:
        return self.action + ".log"


@dataclass
class RestoreOptions:
    """A `criu restore` of a pod into its prepared network namespace and root filesystem."""

    images_dir: str
    work_dir: str
    rootfs: str
    netns_fd: int
    mounts: Sequence[MountSpec] = ()
    tcp_established: bool = True
    lazy_pages: bool = False  # memory comes from a `criu lazy-pages` started in the same work_dir
    action_script: Optional[str] = None  # holds the restored tree before it resumes (holds.py)
    env: Dict[str, str] = field(default_factory=dict)
    pidfile: str = "restore.pid"
    log_name: str = "restore.log"


@dataclass
class PageServerOptions:
    """The receiving end of streamed pages: `criu page-server` writes them into images_dir;
    with lazy, `criu lazy-pages` fetches a post-copied pod's pages as it touches them."""

    images_dir: str
    work_dir: str
    page_socket: int
    parent: Optional[str] = None
    lazy: bool = False

    @property
    def log_name(self) -> str:
        return "lazy-pages.log" if self.lazy else "page-server.log"


def dump_argv(criu: str, options: DumpOptions) -> List[str]:
    argv = [criu, options.action, "--tree", str(options.pid), "--images-dir", options.images_dir,
            "--work-dir", options.work_dir, "--log-file", options.log_name, LOG_LEVEL,
            "--external", "net[%d]:%s" % (options.netns_inode, NET_KEY)]
    for index, mount in enumerate(options.mounts):
        argv += ["--external", "mnt[%s]:%s" % (mount.target, mount_key(index))]
    if options.pre_dump or options.parent:
        argv.append("--track-mem")
    if options.parent:
        argv += ["--prev-images-dir", options.parent]
    if not options.pre_dump:
        argv += ["--file-locks", "--skip-in-flight"]
        if options.tcp_established:
            argv += ["--tcp-established", "--network-lock", "nftables"]
    if options.leave_running:
        argv.append("--leave-running")
    if options.leave_stopped:
        argv.append("--leave-stopped")
    if options.lazy_pages:
        argv.append("--lazy-pages")
    elif options.page_socket is not None:
        argv.append("--page-server")
    if options.page_socket is not None:
        argv += ["--ps-socket", str(options.page_socket)]
    if options.status_fd is not None:
        argv += ["--status-fd", str(options.status_fd)]
    return argv


def restore_argv(criu: str, options: RestoreOptions) -> List[str]:
    argv = [criu, "restore", "--images-dir", options.images_dir, "--work-dir", options.work_dir,
            "--log-file", options.log_name, LOG_LEVEL, "--restore-detached", "--pidfile", options.pidfile,
            "--root", options.rootfs, "--file-locks", "--inherit-fd", "fd[%d]:%s" % (options.netns_fd, NET_KEY)]
    for index, mount in enumerate(options.mounts):
        argv += ["--external", "mnt[%s]:%s" % (mount_key(index), mount.source)]
    if options.tcp_established:
        argv += ["--tcp-established", "--network-lock", "nftables"]
    if options.lazy_pages:
        argv.append("--lazy-pages")
    if options.action_script:
        argv += ["--action-script", options.action_script]
    return argv


def page_server_argv(criu: str, options: PageServerOptions) -> List[str]:
    action = "lazy-pages" if options.lazy else "page-server"
    argv = [criu, action, "--images-dir", options.images_dir, "--work-dir", options.work_dir,
            "--log-file", options.log_name, LOG_LEVEL]
    if options.lazy:
        argv.append("--page-server")
    argv += ["--ps-socket", str(options.page_socket)]
    if options.parent:
        argv += ["--prev-images-dir", options.parent]
    return argv


def cpuinfo_argv(criu: str, action: str, images_dir: str) -> List[str]:
    """`criu cpuinfo dump` (source) writes cpuinfo.img; `criu cpuinfo check` (destination) compares it."""
    return [criu, "cpuinfo", action, "--images-dir", images_dir, "--work-dir", images_dir,
            "--log-file", "cpuinfo-%s.log" % action, LOG_LEVEL]


# Failures whose cause CRIU's own words do not say: (what its log says, why, and what to do).
KNOWN_FAILURES = (
    ("Can't get rlimit", "CRIU reads the resource limits of processes that run as other users with prlimit(2), which "
     "needs CAP_SYS_RESOURCE, and root on this host lacks it (a container or sandbox dropped it); install CRIU with "
     "the autopod.autopod.criu role (criu_install=private_root, criu_limits_shim=auto), which then reads them from "
     "/proc/PID/limits (docs/design.md, \"Pods with their own users\")"),
)


def log_errors(log_path: str, limit: int = 6) -> str:
    """The last error lines of a CRIU log, joined for a message, with the cause where it is a known one.
    The RLIMIT_NOFILE line appears on every run where root lacks CAP_SYS_RESOURCE and is harmless
    (docs/design.md), so it is left out."""
    try:
        with open(log_path, errors="replace") as handle:
            lines = [line.strip() for line in handle
                     if "Error" in line and "RLIMIT_NOFILE" not in line]
    except OSError:
        return "no log at %s" % log_path
    text = " | ".join(lines[-limit:]) or "no error line in %s" % log_path
    causes = [why for marker, why in KNOWN_FAILURES if any(marker in line for line in lines)]
    return text + "".join(" -- " + cause for cause in causes)


def read_stats(work_dir: str, kind: str) -> Dict[str, int]:
    try:
        with open(os.path.join(work_dir, "stats-" + kind), "rb") as handle:
            return parse_stats(handle.read())
    except (OSError, ImageFormatError):
        return {}


def _fds(options: object) -> Tuple[int, ...]:
    """The descriptors a command built from `options` refers to, which it must inherit."""
    names = ("page_socket", "status_fd", "netns_fd")
    return tuple(getattr(options, n) for n in names if getattr(options, n, None) is not None)


class Criu:
    """One CRIU binary on this host."""

    def __init__(self, path: str = "criu") -> None:
        found = path if os.path.isabs(path) else shutil.which(path, path=_SEARCH_PATH)
        if not found or not os.access(found, os.X_OK):
            raise AutopodError("CRIU was not found at %r: install it with the autopod.autopod.criu role "
                               "or set criu_path to the criu binary" % path)
        self.path = found
        self._version: Optional[Tuple[int, ...]] = None
        self.last_argv: List[str] = []

    @property
    def version(self) -> Tuple[int, ...]:
        if self._version is None:
            self._version = parse_version(commands.run([self.path, "--version"], merge_output=True).out)
        return self._version

    def facts(self) -> Dict[str, str]:
        return {"path": self.path, "version": version_string(self.version), "kernel": platform.release()}

    def ensure_compatible(self, tcp: bool) -> None:
        problems = compatibility_problems(self.version, platform.release(), tcp)
        if problems:
            raise AutopodError("; ".join(problems) + "; " + INSTALL_HINT, criu=self.facts())

    def check(self, feature: Optional[str] = None) -> Tuple[bool, str]:
        """`criu check` (or `criu check --feature NAME`): does the kernel offer what CRIU needs?"""
        result = commands.run([self.path, "check"] + (["--feature", feature] if feature else []), merge_output=True)
        output = result.out.strip()
        if feature:  # some features say "X is supported", others (mem_dirty_track) say nothing when they are
            return result.rc == 0 and "not supported" not in output.lower(), output
        return result.rc == 0 and "Looks good" in output, output

    def argv(self, options: object) -> List[str]:
        if isinstance(options, DumpOptions):
            return dump_argv(self.path, options)
        if isinstance(options, RestoreOptions):
            return restore_argv(self.path, options)
        return page_server_argv(self.path, options)  # type: ignore[arg-type]

    def run(self, options: object, what: str, timeout: Optional[float] = None) -> None:
        """Run one CRIU action to its end; on failure or after `timeout` seconds raise with the log's error lines."""
        argv = self.argv(options)
        self.last_argv = argv
        log = os.path.join(options.work_dir, options.log_name)  # type: ignore[attr-defined]
        try:
            result = commands.run(argv, env=getattr(options, "env", None), timeout=timeout, pass_fds=_fds(options),
                                  private=True, merge_output=True)
        except commands.CommandTimeout:
            raise AutopodError("criu %s did not finish within %d seconds and was stopped (log: %s)"
                               % (what, timeout, log))
        if result.rc != 0:
            raise AutopodError("criu %s failed (exit %d): %s (full log: %s)" % (what, result.rc, log_errors(log), log),
                               criu_output=result.out[-2000:], criu_argv=argv)

    def start(self, options: object) -> "commands.Process[bytes]":
        """Start a CRIU action that runs beside the caller (a page server, lazy-pages, a post-copy dump)."""
        self.last_argv = self.argv(options)
        return commands.start(self.last_argv, env=getattr(options, "env", None), pass_fds=_fds(options), private=True)

    def cpuinfo(self, action: str, images_dir: str) -> None:
        """`criu cpuinfo dump` into images_dir, or `check` against the cpuinfo.img there."""
        result = commands.run(cpuinfo_argv(self.path, action, images_dir), private=True, merge_output=True)
        if result.rc != 0:
            what = "this CPU lacks features the pod's source CPU has" if action == "check" else "criu cpuinfo dump failed"
            raise AutopodError("%s (`criu cpuinfo %s`: %s)"
                               % (what, action, log_errors(os.path.join(images_dir, "cpuinfo-%s.log" % action))))


def assess(path: str, tcp: bool, fail_on_problem: bool) -> Dict[str, object]:
    """Everything criu_info reports: presence, `criu check`, and the version against the kernel."""
    result: Dict[str, object] = {"changed": False, "kernel": platform.release(), "problems": []}
    try:
        criu = Criu(path)
        result.update(criu.facts())
        ok, output = criu.check()
        result["check_output"] = output
        problems = compatibility_problems(criu.version, platform.release(), tcp)
        if problems:
            problems[-1] += "; " + INSTALL_HINT
        if not ok:
            problems.insert(0, "`%s check` failed: %s" % (criu.path, output.splitlines()[-1] if output else "no output"))
        result["problems"] = problems
    except AutopodError as exc:
        result["problems"] = [exc.msg]
    result["usable"] = not result["problems"]
    if fail_on_problem and result["problems"]:
        raise AutopodError("CRIU is not usable on this host: " + "; ".join(result["problems"]), **result)
    return result
