# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CRIU driver: find the binary, judge its version against the kernel, build
its command lines (argument lists, never shell strings) and run them."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import subprocess
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from ansible_collections.autopod.autopod.plugins.module_utils.criu_images import ImageFormatError, parse_stats
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.pod import MountSpec

NET_KEY = "autopod-net"
LOG_LEVEL = "-v4"
# CRIU lives in sbin directories, which a non-login PATH may lack.
_SEARCH_PATH = ":".join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
# (kernel from, CRIU needed, applies only with TCP connections, why): DESIGN.md, "CRIU: versions".
KERNEL_RULES = (
    ((6, 13), (4, 1), False,
     "kernels from 6.13 split the vvar area and CRIU before 4.1 stops with "
     "'vdso: Unexpected rt vDSO area bounds'"),
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


def _tree_argv(criu: str, action: str, pid: int, images_dir: str, work_dir: str, netns_inode: int,
               mounts: Sequence[MountSpec]) -> List[str]:
    """What every dump and pre-dump of a pod says: which tree, where, and what is external to it."""
    argv = [criu, action, "--tree", str(pid), "--images-dir", images_dir, "--work-dir", work_dir,
            "--log-file", "%s.log" % action, LOG_LEVEL, "--external", "net[%d]:%s" % (netns_inode, NET_KEY)]
    for index, mount in enumerate(mounts):
        argv += ["--external", "mnt[%s]:%s" % (mount.target, mount_key(index))]
    return argv


def _pre_copy_argv(parent: Optional[str]) -> List[str]:
    """Soft-dirty tracking, and the previous round's images (relative to the images directory)."""
    return ["--track-mem"] + (["--prev-images-dir", parent] if parent else [])


def pre_dump_argv(criu: str, pid: int, images_dir: str, work_dir: str, netns_inode: int,
                  mounts: Sequence[MountSpec], page_server: Tuple[str, int], parent: Optional[str]) -> List[str]:
    """One pre-copy round: the pod is frozen only while its memory is collected, then runs on while
    the pages (only those dirtied since `parent`, with soft-dirty tracking) stream to the destination."""
    return (_tree_argv(criu, "pre-dump", pid, images_dir, work_dir, netns_inode, mounts) + _pre_copy_argv(parent)
            + ["--page-server", "--address", page_server[0], "--port", str(page_server[1])])


def dump_argv(criu: str, pid: int, images_dir: str, work_dir: str, netns_inode: int,
              mounts: Sequence[MountSpec], tcp: bool, leave_running: bool,
              lazy_server: Optional[Tuple[str, int]] = None, page_server: Optional[Tuple[str, int]] = None,
              status_fd: Optional[int] = None, parent: Optional[str] = None) -> List[str]:
    """A dump. With `lazy_server` memory is left for post-copy: the dump becomes the page server at that
    address and runs until the destination has every page. With `page_server` pages stream to a
    `criu page-server` on the destination instead of into `images_dir`. With `parent` (pre-copy) only
    pages dirtied since that pre-dump are sent."""
    argv = _tree_argv(criu, "dump", pid, images_dir, work_dir, netns_inode, mounts)
    argv += ["--file-locks", "--skip-in-flight"]
    if parent:
        argv += _pre_copy_argv(parent)
    if tcp:
        argv += ["--tcp-established", "--network-lock", "nftables"]
    if leave_running:
        argv.append("--leave-running")
    if lazy_server:
        argv += ["--lazy-pages", "--address", lazy_server[0], "--port", str(lazy_server[1])]
    if page_server:
        argv += ["--page-server", "--address", page_server[0], "--port", str(page_server[1])]
    if status_fd is not None:
        argv += ["--status-fd", str(status_fd)]
    return argv


def restore_argv(criu: str, images_dir: str, work_dir: str, rootfs: str, netns_fd: int,
                 mounts: Sequence[MountSpec], tcp: bool, pidfile: str, lazy: bool = False) -> List[str]:
    argv = [criu, "restore", "--images-dir", images_dir, "--work-dir", work_dir, "--log-file", "restore.log",
            LOG_LEVEL, "--restore-detached", "--pidfile", pidfile, "--root", rootfs, "--file-locks",
            "--inherit-fd", "fd[%d]:%s" % (netns_fd, NET_KEY)]
    for index, mount in enumerate(mounts):
        argv += ["--external", "mnt[%s]:%s" % (mount_key(index), mount.source)]
    if tcp:
        argv += ["--tcp-established", "--network-lock", "nftables"]
    if lazy:
        argv.append("--lazy-pages")
    return argv


def lazy_pages_argv(criu: str, images_dir: str, work_dir: str, source: Tuple[str, int]) -> List[str]:
    """The destination's daemon that fetches a post-copied pod's pages from the source's dump."""
    return [criu, "lazy-pages", "--images-dir", images_dir, "--work-dir", work_dir, "--log-file", "lazy-pages.log",
            LOG_LEVEL, "--page-server", "--address", source[0], "--port", str(source[1])]


def page_server_argv(criu: str, images_dir: str, work_dir: str, listen: Tuple[str, int],
                     parent: Optional[str] = None) -> List[str]:
    """The destination's receiver of a streamed dump's pages (exits when the dump ends). With `parent`
    (pre-copy) it links the previous round's images, which hold the pages not sent again."""
    return [criu, "page-server", "--images-dir", images_dir, "--work-dir", work_dir,
            "--log-file", "page-server.log", LOG_LEVEL, "--address", listen[0], "--port", str(listen[1])] + \
        (["--prev-images-dir", parent] if parent else [])


def cpuinfo_argv(criu: str, action: str, images_dir: str) -> List[str]:
    """`criu cpuinfo dump` (source) writes cpuinfo.img; `criu cpuinfo check` (destination) compares it."""
    return [criu, "cpuinfo", action, "--images-dir", images_dir, "--work-dir", images_dir,
            "--log-file", "cpuinfo-%s.log" % action, LOG_LEVEL]


def log_errors(log_path: str, limit: int = 6) -> str:
    """The last error lines of a CRIU log, joined for a message."""
    try:
        with open(log_path, errors="replace") as handle:
            lines = [line.strip() for line in handle if "Error" in line or "error" in line]
    except OSError:
        return "no log at %s" % log_path
    return " | ".join(lines[-limit:]) or "no error line in %s" % log_path


def read_stats(work_dir: str, kind: str) -> Dict[str, int]:
    try:
        with open(os.path.join(work_dir, "stats-" + kind), "rb") as handle:
            return parse_stats(handle.read())
    except (OSError, ImageFormatError):
        return {}


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Images hold process memory: whatever CRIU writes is for root only."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


class Criu:
    """One CRIU binary on this host."""

    def __init__(self, path: str = "criu") -> None:
        found = path if os.path.isabs(path) else shutil.which(path, path=_SEARCH_PATH)
        if not found or not os.access(found, os.X_OK):
            raise AutopodError("CRIU was not found at %r: install it with the autopod.autopod.criu role "
                               "or set criu_path to the criu binary" % path)
        self.path = found
        self._version: Optional[Tuple[int, ...]] = None

    @property
    def version(self) -> Tuple[int, ...]:
        if self._version is None:
            result = subprocess.run([self.path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    universal_newlines=True, check=False)
            self._version = parse_version(result.stdout)
        return self._version

    def facts(self) -> Dict[str, str]:
        return {"path": self.path, "version": version_string(self.version), "kernel": platform.release()}

    def ensure_compatible(self, tcp: bool) -> None:
        problems = compatibility_problems(self.version, platform.release(), tcp)
        if problems:
            raise AutopodError("; ".join(problems) + "; " + INSTALL_HINT, criu=self.facts())

    def check(self, feature: Optional[str] = None) -> Tuple[bool, str]:
        """`criu check` (or `criu check --feature NAME`): does the kernel offer what CRIU needs?"""
        argv = [self.path, "check"] + (["--feature", feature] if feature else [])
        result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                universal_newlines=True, check=False)
        output = result.stdout.strip()
        if feature:  # some features say "X is supported", others (mem_dirty_track) say nothing when they are
            return result.returncode == 0 and "not supported" not in output.lower(), output
        return result.returncode == 0 and "Looks good" in output, output

    def run(self, argv: List[str], work_dir: str, log_name: str, what: str,
            pass_fds: Sequence[int] = (), timeout: Optional[float] = None) -> None:
        """Run one CRIU action; on failure or after `timeout` seconds raise with the log's error lines."""
        log = os.path.join(work_dir, log_name)
        with private_umask():
            try:
                result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        universal_newlines=True, pass_fds=tuple(pass_fds), check=False,
                                        timeout=timeout)
            except subprocess.TimeoutExpired:
                raise AutopodError("criu %s did not finish within %d seconds and was stopped (log: %s)"
                                   % (what, timeout, log))
        if result.returncode != 0:
            raise AutopodError("criu %s failed (exit %d): %s (full log: %s)"
                               % (what, result.returncode, log_errors(log), log),
                               criu_output=result.stdout[-2000:])


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
