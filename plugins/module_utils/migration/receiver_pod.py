# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the destination does with an arriving pod: take its pages and images, restore it held, let it
go, and, if anything fails, kill its copy and give back only what this receiver made.

The receiver owns the pod's name on this host through its claim (the manifest's `migration.id`);
everything it removes, it removes only while that claim is still its own, so a receiver abandoned by
an earlier run can never tear down a pod that a later move brought here.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ansible_collections.autopod.autopod.plugins.module_utils import capacity, cgroups, commands, holds, rootfs_delta, tcp_repair
from ansible_collections.autopod.autopod.plugins.module_utils import criu as criu_driver
from ansible_collections.autopod.autopod.plugins.module_utils import network
from ansible_collections.autopod.autopod.plugins.module_utils.checkpointing import RestoreRun, criu_restore, read_image_meta
from ansible_collections.autopod.autopod.plugins.module_utils.criu_images import ImageFormatError, skip_network_unlock
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.lifecycle import release, start_supervised
from ansible_collections.autopod.autopod.plugins.module_utils.migration.protocol import round_dir
from ansible_collections.autopod.autopod.plugins.module_utils.migration.streams import Relay, criu_socket_pair
from ansible_collections.autopod.autopod.plugins.module_utils.pod import PodSpec
from ansible_collections.autopod.autopod.plugins.module_utils.store import Manifest, PodStore, make_private_dir
from ansible_collections.autopod.autopod.plugins.module_utils.timing import Stopwatch


@dataclass
class Claim:
    """This receiver's hold on the pod's name here: its id (on the manifest while it waits), the host the pod
    belongs on, and what this host knew of the pod before (a tombstone, say), put back if the move fails."""

    id: str
    home: Optional[str]
    previous: Optional[Manifest]


class ArrivingPod:
    """One pod on its way to this host, for the length of one move."""

    def __init__(self, store: PodStore, criu: criu_driver.Criu, spec: PodSpec, image_dir: str, claim: "Claim") -> None:
        self.store, self.criu, self.spec, self.image_dir = store, criu, spec, image_dir
        self.claim, self.home = claim.id, claim.home
        self.previous = claim.previous
        self.work = image_dir + ".work"
        self.page_server: Optional["commands.Process[bytes]"] = None
        self.lazy: Optional["commands.Process[bytes]"] = None
        self.relay: Optional[Relay] = None
        self.hold: Optional[holds.Hold] = None
        self.manifest: Optional[Manifest] = None
        self._rootfs_written = False  # this receiver wrote the pod's rootfs here (copy storage)
        self._restore: Optional[threading.Thread] = None
        self._restore_error: Optional[BaseException] = None
        self.timings: Dict[str, float] = {}

    def owns_claim(self) -> bool:
        manifest = self.store.load(self.spec.name)
        return manifest is not None and (manifest.migration or {}).get("id") == self.claim

    # ---- the root filesystem (copy storage) ----

    def open_rootfs(self, needed: int, deletions: List[str]) -> str:
        """Make the pod's rootfs here ready for `needed` bytes from the source, with `deletions` removed, and
        return its path. From here on this receiver counts as its writer: give_back removes a copy this host
        had none of before."""
        rootfs = self.spec.rootfs
        if capacity.disk_free(rootfs) < needed:
            raise AutopodError("not enough disk for the rootfs at %s: %d MiB free, %d MiB needed"
                               % (rootfs, capacity.disk_free(rootfs) >> 20, needed >> 20))
        os.makedirs(rootfs, exist_ok=True)
        self._rootfs_written = True
        rootfs_delta.apply_deletions(rootfs, deletions)
        return rootfs

    # ---- pages and images ----

    def start_page_server(self, number: int, stream: socket.socket, stall: float) -> None:
        """CRIU's page server for pre-copy round `number`, or for the final dump (0), fed by `stream`.
        Each pre-copy round's images link the round before; the final images link the last round."""
        images, parent = self.image_dir, None
        if number:
            images = make_private_dir(os.path.join(self.image_dir, round_dir(number)))
            parent = os.path.join("..", round_dir(number - 1)) if number > 1 else None
        else:
            rounds = sorted(n for n in os.listdir(self.image_dir) if n.startswith("pre"))
            parent = rounds[-1] if rounds else None
        criu_end, relay_end = criu_socket_pair()
        try:
            self.page_server = self.criu.start(criu_driver.PageServerOptions(
                images_dir=images, work_dir=make_private_dir(self.work), page_socket=criu_end.fileno(), parent=parent))
        finally:
            criu_end.close()
        self.relay = Relay(relay_end, stream, stall, "page").start()
        self.relay.watch_peer()

    def end_page_server(self, timeout: float) -> None:
        """The source has sent the stream; wait until the page server has written everything."""
        if not self.relay.wait(timeout) or self.relay.error:
            raise AutopodError(self.relay.error or "the page stream did not end within %d seconds" % timeout)
        code = commands.wait(self.page_server, timeout)
        if code != 0:
            raise AutopodError("criu page-server failed (%s): %s" % (
                "exit %s" % code if code is not None else "still running",
                criu_driver.log_errors(os.path.join(self.work, "page-server.log"))))
        self.page_server = None

    def start_lazy_pages(self, stream: socket.socket, stall: float) -> None:
        criu_end, relay_end = criu_socket_pair()
        try:
            self.lazy = self.criu.start(criu_driver.PageServerOptions(
                images_dir=self.image_dir, work_dir=make_private_dir(self.work), page_socket=criu_end.fileno(),
                lazy=True))
        finally:
            criu_end.close()
        self.relay = Relay(relay_end, stream, stall, "lazy page").start()
        self.relay.watch_peer()

    def _wait_for_lazy_pages_socket(self, timeout: float) -> None:
        """`criu restore --lazy-pages` connects at once to the socket lazy-pages makes in the work directory
        once it has read the images; started before it exists, the restore fails ("uffd: connect to
        lazy-pages.socket failed: No such file or directory")."""
        path = os.path.join(self.work, criu_driver.LAZY_PAGES_SOCKET)
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if self.lazy is None or self.lazy.poll() is not None or time.monotonic() > deadline:
                raise AutopodError("criu lazy-pages did not get ready: %s"
                                   % criu_driver.log_errors(os.path.join(self.work, "lazy-pages.log")))
            time.sleep(0.005)

    # ---- restore, held ----

    def restore_held(self, hold_timeout: float) -> Dict[str, Any]:
        """Restore the pod and wait until it is held before resuming (holds.py); returns the image's meta."""
        meta = read_image_meta(self.image_dir)
        lazy, tcp = bool(meta.get("lazy")), bool(meta.get("tcp_established", True))
        if tcp:  # this host's copy: the dump's lock table stayed in the namespace the pod left, this one is new
            try:
                skip_network_unlock(self.image_dir)
            except (OSError, ImageFormatError) as exc:
                raise AutopodError("the images at %s cannot be restored: %s" % (self.image_dir, exc))
        self.manifest = Manifest(spec=self.spec, generation=int(meta.get("generation", 0)), home=self.home)
        with self.store.lock():
            claimed = self.store.load(self.spec.name)
            if claimed is None or (claimed.migration or {}).get("id") != self.claim:
                raise AutopodError("another receiver has taken pod %s over on this host" % self.spec.name)
            self.manifest.migration = claimed.migration
        self.hold = holds.Hold(os.path.join(self.work, "hold"))
        if lazy:
            self._wait_for_lazy_pages_socket(hold_timeout)
        watch = Stopwatch()

        def run_restore(netns_path: str, _procs: str) -> int:
            run = RestoreRun(self.image_dir, self.work, tcp, lazy=lazy, hold_dir=self.hold.directory)
            return criu_restore(self.criu, self.spec, run, netns_path)

        def restore() -> None:
            try:
                start_supervised(self.store, self.manifest, run_restore, watch,
                                 after_report=lambda: network.announce(self.spec), identity_prepared=True)
            except BaseException as exc:  # reported by wait_running
                self._restore_error = exc
            self.timings = watch.result()

        self._restore = threading.Thread(target=restore, daemon=True)
        self._restore.start()
        try:
            self.hold.wait_held(hold_timeout, self._restore.is_alive)
        except AutopodError as exc:
            self._restore.join(5)
            raise AutopodError("restore on the destination failed: %s"
                               % (getattr(self._restore_error, "msg", None) or self._restore_error or exc.msg))
        return meta

    def go(self, timeout: float) -> Dict[str, Any]:
        """Bring the held pod up on its bridge while its tasks are still held (checkpointing.criu_restore),
        let it resume, and return once it runs."""
        watch = Stopwatch()
        network.attach(self.spec)
        watch.lap("attach")
        probed = tcp_repair.leave_repair(cgroups.processes(self.spec.name))
        watch.lap("window_probes")
        self.hold.release(holds.GO)
        self._restore.join(timeout)
        watch.lap("resume")
        if self._restore.is_alive() or self._restore_error is not None:
            raise AutopodError("the pod did not resume: %s" % (self._restore_error or "the restore hangs"))
        return {"init_pid": self.manifest.init_pid, "restore_timings": self.timings, "go_timings": watch.result(),
                "connections_probed": len(probed), "stats": criu_driver.read_stats(self.work, "restore")}

    def wait_lazy(self, poll: float) -> Optional[str]:
        """Post-copy: None once every page has arrived, else why they never will (None only when lazy-pages
        ended with success). Polls so that a relay failure is seen while lazy-pages still waits."""
        while True:
            if self.relay.error:
                return self.relay.error
            code = commands.wait(self.lazy, poll)
            if code is None:
                continue
            self.lazy = None
            return None if code == 0 else "criu lazy-pages failed (exit %d): %s" % (
                code, criu_driver.log_errors(os.path.join(self.work, "lazy-pages.log")))

    # ---- undoing ----

    def kill(self) -> None:
        """Kill this host's copy of the pod first, so that it never runs on without its pages, then the
        CRIU helpers and streams."""
        if self.hold is not None:
            self.hold.close()
        if self._restore is not None:  # only a pod this receiver restored is in the cgroup as its own
            network.detach(self.spec)  # its sockets die with it: no reset may reach a client the source serves
            cgroups.kill_all(self.spec.name)
        for process in (self.lazy, self.page_server):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        if self.relay is not None:
            self.relay.close()
        if self._restore is not None:
            self._restore.join(30)

    def give_back(self) -> None:
        """Remove what this receiver made for the pod, if the pod's name here is still its own, and put back
        what this host knew of the pod before. A rootfs copy this host had no earlier copy of is removed too:
        kept, it would be nobody's, and the next move here would refuse to write over it (receiver.py)."""
        self.kill()
        with self.store.lock():
            if self.owns_claim():
                release(self.spec)
                if self.previous is not None:
                    self.store.save(self.previous)
                else:
                    self.store.remove(self.spec.name)
                    if self._rootfs_written:
                        shutil.rmtree(self.spec.rootfs, ignore_errors=True)
        self.cleanup()

    def settle(self) -> None:
        """The move is complete: the pod is this host's now."""
        with self.store.lock():
            manifest = self.store.load(self.spec.name)
            if manifest is not None and (manifest.migration or {}).get("id") == self.claim:
                manifest.migration = None
                self.store.save(manifest)
        if self.hold is not None:
            self.hold.close()
        self.cleanup()

    def cleanup(self) -> None:
        if self.relay is not None:
            self.relay.close()
        for path in (self.image_dir, self.work, self.image_dir + ".cpu"):
            shutil.rmtree(path, ignore_errors=True)
