# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the source does to its own pod during a move: dump it (leaving a stopped copy), and then end
that copy once the destination runs the pod, or revive it if the move fails (revive.py)."""

from __future__ import annotations

import os
import select
import shutil
import socket
import time
from typing import Any, Dict, List, Optional

from ansible_collections.autopod.autopod.plugins.module_utils import criu as criu_driver
from ansible_collections.autopod.autopod.plugins.module_utils import commands, revive, rootfs_delta
from ansible_collections.autopod.autopod.plugins.module_utils.checkpointing import write_image_meta
from ansible_collections.autopod.autopod.plugins.module_utils.criu_images import PAGE_SIZE, lazy_pages
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.lifecycle import release, resident_memory, wait_supervisor
from ansible_collections.autopod.autopod.plugins.module_utils.migration.protocol import POST_COPY, round_dir
from ansible_collections.autopod.autopod.plugins.module_utils.store import Manifest, PodStore, make_private_dir


class DumpFailed(AutopodError):
    """CRIU's dump failed; CRIU itself has resumed the pod where it was."""


class SourcePod:
    """One running pod on the source, for the length of one move."""

    def __init__(self, store: PodStore, criu: criu_driver.Criu, manifest: Manifest, image_dir: str) -> None:
        self.store, self.criu, self.manifest = store, criu, manifest
        self.spec = manifest.spec
        self.image_dir = image_dir
        self.work = store.fresh_work_dir(self.spec.name, "move")
        self.dump: Optional["commands.Process[bytes]"] = None
        self.dumped = False  # a stopped copy exists that CRIU will not resume on its own

    # ---- while the pod runs ----

    def memory(self) -> int:
        return resident_memory(self.spec.name) or 0

    def cpuinfo(self, directory: str) -> None:
        self.criu.cpuinfo("dump", make_private_dir(directory))

    def scan_rootfs(self) -> Dict[str, rootfs_delta.Fingerprint]:
        return rootfs_delta.scan_tree(self.spec.rootfs)

    def prepare_images(self) -> None:
        shutil.rmtree(self.image_dir, ignore_errors=True)
        make_private_dir(self.image_dir)

    def _options(self, page_socket: int, **fields: Any) -> criu_driver.DumpOptions:
        return criu_driver.DumpOptions(pid=self.manifest.init_pid, images_dir=self.image_dir, work_dir=self.work,
                                       netns_inode=os.stat("/proc/%d/ns/net" % self.manifest.init_pid).st_ino,
                                       mounts=self.spec.mounts, page_socket=page_socket, **fields)

    def pre_dump(self, number: int, page_socket: socket.socket) -> int:
        """Pre-copy round `number`: the pod's memory (only what was dirtied since the previous round) goes
        to the destination while the pod runs on. Returns the pages sent."""
        images = make_private_dir(os.path.join(self.image_dir, round_dir(number)))
        options = self._options(page_socket.fileno(), pre_dump=True,
                                parent=os.path.join("..", round_dir(number - 1)) if number > 1 else None)
        options.images_dir = images
        self.criu.run(options, "pre-dump")
        return criu_driver.read_stats(self.work, "dump").get("pages_written", 0)

    # ---- the freeze ----

    def freeze(self, strategy: str, page_socket: socket.socket, pre_copy_rounds: int, deadline: float) -> None:
        """Dump the pod with --leave-stopped, its memory through `page_socket` (post-copy: lazily, by the
        dump that stays up as the page server). Returns once everything but lazy memory is dumped; the
        pod is then a stopped copy here. If CRIU fails, it has resumed the pod: DumpFailed."""
        write_image_meta(self.image_dir, self.spec, self.manifest.generation, True, self.criu,
                         lazy=strategy == POST_COPY)
        lazy = strategy == POST_COPY
        read_fd, write_fd = os.pipe() if lazy else (None, None)
        options = self._options(page_socket.fileno(), leave_stopped=True, lazy_pages=lazy, status_fd=write_fd,
                                parent=round_dir(pre_copy_rounds) if pre_copy_rounds else None)
        self.dump = self.criu.start(options)
        if lazy:
            os.close(write_fd)
            ready = self._wait_status(read_fd, deadline)
        else:
            ready = self._wait_exit(deadline) == 0
        if not ready:
            self._dump_failed()
        self.dumped = True
        if lazy:
            # If the page transfer fails, CRIU 4.2 resumes the tree with its sockets in repair mode; stopped,
            # the processes wait for revive() instead (revive.py).
            revive.stop(self.spec)

    def _wait_status(self, read_fd: int, deadline: float) -> bool:
        with os.fdopen(read_fd, "rb") as status:
            ready = select.select([status], [], [], max(deadline - time.monotonic(), 0))[0]
            return bool(ready) and bool(status.read(1))

    def _wait_exit(self, deadline: float) -> Optional[int]:
        return commands.wait(self.dump, max(deadline - time.monotonic(), 0))

    def _dump_failed(self) -> None:
        why = "failed (exit %s)" % self.dump.returncode
        if self.dump.poll() is None:
            self.dump.kill()  # took too long: a killed CRIU leaves the same stopped, locked copy as a finished one
            self.dump.wait()
            why = "did not finish within max_freeze and was stopped"
        elif self.dump.returncode < 0:
            why = "was killed (signal %d)" % -self.dump.returncode
        errors = criu_driver.log_errors(os.path.join(self.work, "dump.log"))
        if revive.left_frozen(self.spec):  # CRIU did not get to resume the pod itself
            revived = self.revive()
            raise DumpFailed("criu dump %s: %s; pod %s was revived here (%s)" % (why, errors, self.spec.name, revived))
        still = "is still running" if self.manifest.is_running() else "is NOT running any more"
        raise DumpFailed("criu dump %s: %s; pod %s %s here" % (why, errors, self.spec.name, still))

    def dump_stats(self) -> Dict[str, int]:
        return criu_driver.read_stats(self.work, "dump")

    def lazy_bytes(self) -> int:
        """What a post-copied pod's destination must fetch from here before it is complete."""
        return lazy_pages(self.image_dir) * PAGE_SIZE

    def image_files(self) -> List[str]:
        return sorted(n for n in os.listdir(self.image_dir)
                      if os.path.isfile(os.path.join(self.image_dir, n)) and not os.path.islink(os.path.join(self.image_dir, n)))

    # ---- after the freeze ----

    def _stop_dump(self) -> None:
        if self.dump is not None and self.dump.poll() is None:
            self.dump.kill()
            self.dump.wait()

    def revive(self) -> Dict[str, object]:
        """The move failed: bring the stopped copy back to life here."""
        self._stop_dump()
        report = revive.revive(self.spec)
        self.dumped = False
        return report

    def end(self, destination: str) -> None:
        """The destination has the pod: kill the stopped copy, release what it held, and leave a tombstone
        so this host never starts the pod from its old manifest."""
        self._stop_dump()
        revive.end(self.spec)
        wait_supervisor(self.manifest)
        release(self.spec)
        with self.store.lock():
            manifest = self.store.load(self.spec.name) or self.manifest
            manifest.mark_moved(destination)
            self.store.save(manifest)
        self.dumped = False

    def cleanup(self) -> None:
        shutil.rmtree(self.image_dir, ignore_errors=True)
