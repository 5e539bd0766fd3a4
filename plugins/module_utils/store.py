# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where pods live on a host: the state directory, one manifest per pod, and its lock.

Layout under the state directory (default /var/lib/autopod), all root-only:
  pods/<name>/manifest.json   the pod's definition and runtime facts
  pods/<name>/exit.json       written by the pod's supervisor when its first process ends
  pods/<name>/supervisor.log  the supervisor's own messages
  images/<name>/              the default checkpoint image directory
  work/<name>/                CRIU logs and statistics of the last operation
  .lock                       serialises changes; held briefly, never across the network
The state directory and everything in it are root-only (0700 directories, 0600 files). A refused
request leaves no trace: a state directory made only to hold the lock is removed again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterator, List, Optional

from ansible_collections.autopod.autopod.plugins.module_utils import linux
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.pod import PodSpec, validate_name

RUNNING = "running"
STOPPED = "stopped"
CHECKPOINTED = "checkpointed"
MOVED = "moved"  # a tombstone: the pod moved to another host and must never start here from this manifest
INCOMING = "incoming"  # a receiver is bringing the pod here
INCOMPLETE = "incomplete"  # it arrived by a move that never completed; fenced like MOVED
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
LOCK_TIMEOUT = 60.0


@dataclass
class Manifest:
    """A pod's definition plus what AutoPod last did with it."""

    spec: PodSpec
    status: str = STOPPED
    init_pid: Optional[int] = None
    init_start_time: Optional[int] = None
    boot_id: Optional[str] = None
    supervisor_pid: Optional[int] = None
    generation: int = 0
    image_dir: Optional[str] = None
    checkpoint: Dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    started_at: Optional[float] = None
    home: Optional[str] = None  # the host the pod belongs on, when it visits another
    moved_to: Optional[str] = None  # MOVED: where the pod went
    # a move in progress: {"role": "outgoing"|"incoming", "peer", "pid", "pid_start", "since", "id"}
    migration: Optional[Dict[str, Any]] = None

    @property
    def name(self) -> str:
        return self.spec.name

    def is_running(self) -> bool:
        return (self.status == RUNNING and self.boot_id == linux.boot_id()
                and linux.process_alive(self.init_pid, self.init_start_time))

    def mover_alive(self) -> bool:
        """Whether the process moving this pod (a migrate or a receiver) still runs on this boot."""
        move = self.migration or {}
        return move.get("boot_id") == linux.boot_id() and linux.process_alive(move.get("pid"), move.get("pid_start"))

    def state(self) -> str:
        """running / stopped / checkpointed / moved / incoming / incomplete, as the host is now (a reboot
        stops pods; a move whose mover died leaves an arriving pod incomplete)."""
        if self.status == MOVED:
            return MOVED
        if self.is_running():
            return RUNNING
        if (self.migration or {}).get("role") == "incoming":
            return INCOMING if self.mover_alive() else INCOMPLETE
        return CHECKPOINTED if self.status == CHECKPOINTED else STOPPED

    def busy(self) -> Optional[str]:
        """What is moving this pod right now, if anything (other changes must wait)."""
        if self.migration and self.mover_alive():
            move = self.migration
            return "being moved %s %s by PID %s" % ("to" if move["role"] == "outgoing" else "from",
                                                    move.get("peer"), move.get("pid"))
        return None

    def mark_moving(self, role: str, peer: str, move_id: str) -> None:
        pid = os.getpid()
        self.migration = {"role": role, "peer": peer, "pid": pid, "pid_start": linux.process_start_time(pid),
                          "boot_id": linux.boot_id(), "since": time.time(), "id": move_id}

    def mark_moved(self, destination: str) -> None:
        self.mark_stopped(MOVED)
        self.moved_to, self.migration = destination, None

    def mark_running(self, pid: int, start_time: int, supervisor_pid: int) -> None:
        self.status = RUNNING
        self.init_pid, self.init_start_time = pid, start_time
        self.supervisor_pid = supervisor_pid
        self.boot_id = linux.boot_id()
        self.generation += 1
        self.started_at = time.time()

    def mark_stopped(self, status: str = STOPPED) -> None:
        self.status = status
        self.init_pid = self.init_start_time = self.supervisor_pid = None

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["spec"] = self.spec.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Manifest":
        data = dict(data)
        return cls(spec=PodSpec.from_dict(data.pop("spec")), **data)


def write_private_json(path: str, data: Dict[str, Any]) -> None:
    """Write JSON atomically (temp file + rename) with mode 0600."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _remove_tree(path: str) -> None:
    if os.path.isdir(path):
        linux.unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)


def make_private_dir(path: str) -> str:
    """Create `path` and any missing parent as root-only directories (os.makedirs would leave new
    parents at the umask's mode); an existing `path` is made root-only too."""
    missing = []
    parent = os.path.abspath(path)
    while not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        os.chmod(directory, 0o700)
    os.chmod(path, 0o700)
    return path


def _holder(fd: int) -> str:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return "an unknown process"
    since = time.strftime("%H:%M:%S", time.localtime(data.get("since", 0)))
    return "PID %s (%s, since %s)" % (data.get("pid"), data.get("command"), since)


class PodStore:
    def __init__(self, state_dir: str) -> None:
        self.state_dir = os.path.abspath(state_dir)

    def pod_dir(self, name: str) -> str:
        return os.path.join(self.state_dir, "pods", validate_name(name))

    def manifest_path(self, name: str) -> str:
        return os.path.join(self.pod_dir(name), MANIFEST_NAME)

    def exit_path(self, name: str) -> str:
        return os.path.join(self.pod_dir(name), "exit.json")

    def default_image_dir(self, name: str) -> str:
        return os.path.join(self.state_dir, "images", validate_name(name))

    def fresh_work_dir(self, name: str, purpose: str = "") -> str:
        """An empty private directory for CRIU's logs and statistics of one operation (what the last
        operation of the same purpose left there is removed first)."""
        path = os.path.join(self.state_dir, "work", validate_name(name) + (".%s" % purpose if purpose else ""))
        _remove_tree(path)
        return make_private_dir(path)

    def names(self) -> List[str]:
        pods = os.path.join(self.state_dir, "pods")
        if not os.path.isdir(pods):
            return []
        return sorted(n for n in os.listdir(pods) if os.path.isfile(os.path.join(pods, n, MANIFEST_NAME)))

    def load(self, name: str) -> Optional[Manifest]:
        try:
            with open(self.manifest_path(name)) as handle:
                return Manifest.from_dict(json.load(handle))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as exc:
            raise AutopodError("the manifest of pod %s (%s) is unreadable: %s; remove it or restore it "
                               "from a backup" % (name, self.manifest_path(name), exc))

    def all(self) -> List[Manifest]:
        return [m for m in (self.load(n) for n in self.names()) if m is not None]

    def save(self, manifest: Manifest) -> None:
        make_private_dir(self.pod_dir(manifest.name))
        write_private_json(self.manifest_path(manifest.name), manifest.to_dict())

    def remove(self, name: str) -> None:
        _remove_tree(self.pod_dir(name))
        _remove_tree(os.path.join(self.state_dir, "work", name))

    def read_exit(self, name: str) -> Optional[Dict[str, Any]]:
        try:
            with open(self.exit_path(name)) as handle:
                return json.load(handle)
        except (FileNotFoundError, ValueError):
            return None

    @contextlib.contextmanager
    def lock(self, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        """Serialise everything that reads and changes this state directory. Held for local work only,
        never across the network; after `timeout` seconds the error names the holder."""
        created = not os.path.isdir(self.state_dir)
        make_private_dir(self.state_dir)
        path = os.path.join(self.state_dir, LOCK_NAME)
        fd = self._acquire(path, time.monotonic() + timeout, timeout)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv[:2])[-120:],
                                      "since": time.time()}).encode(), 0)
            yield
        finally:
            if created and os.listdir(self.state_dir) == [LOCK_NAME]:
                os.unlink(path)  # a state directory made only for this lock leaves no trace
                os.rmdir(self.state_dir)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @staticmethod
    def _acquire(path: str, deadline: float, timeout: float) -> int:
        """Open and lock the lock file (never through a symlink), retrying while another process has it.
        A file unlinked by its holder meanwhile is opened again."""
        pause = threading.Event()
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        holder = _holder(fd)
                        os.close(fd)
                        raise AutopodError("the state directory %s is locked by %s; gave up after %d seconds"
                                           % (os.path.dirname(path), holder, timeout))
                    pause.wait(0.05)
            try:
                if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)
