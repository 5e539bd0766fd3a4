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
The lock that serialises changes lives in /run/lock, so that a refused request
leaves no trace, not even an empty state directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterator, List, Optional

from ansible_collections.autopod.autopod.plugins.module_utils import linux
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.pod import PodSpec, validate_name

RUNNING = "running"
STOPPED = "stopped"
CHECKPOINTED = "checkpointed"
MANIFEST_NAME = "manifest.json"
LOCK_DIR = "/run/lock"


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

    @property
    def name(self) -> str:
        return self.spec.name

    def is_running(self) -> bool:
        return (self.status == RUNNING and self.boot_id == linux.boot_id()
                and linux.process_alive(self.init_pid, self.init_start_time))

    def state(self) -> str:
        """running / stopped / checkpointed, as the host is now (a reboot stops pods)."""
        if self.is_running():
            return RUNNING
        return CHECKPOINTED if self.status == CHECKPOINTED else STOPPED

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
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


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

    def work_dir(self, name: str, purpose: str = "") -> str:
        """A fresh, private directory for CRIU's logs and statistics of one operation."""
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
    def lock(self) -> Iterator[None]:
        """Serialise everything that reads and changes this state directory."""
        os.makedirs(LOCK_DIR, exist_ok=True)
        key = hashlib.sha256(self.state_dir.encode()).hexdigest()[:16]
        with open(os.path.join(LOCK_DIR, "autopod-%s.lock" % key), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
