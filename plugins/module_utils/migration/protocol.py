# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The migration's wire protocol: message types, the plan both sides agree on, and the time limits.

Every connection opens with HELLO (token, pod, and which stream it is: the control conversation, or
one of CRIU's page streams). The control conversation, source -> destination unless marked <-:

  HELLO                        <- READY   (what the destination can do, its memory)
  PLAN strategy, storage       <- PLAN_OK (the destination agrees; refusal is an ERROR)
  CPUINFO + tree               <- CPU_OK
  [copy]   ROOTFS_SCAN <- ROOTFS_STATE; ROOTFS + tree <- ROOTFS_OK   (while the pod runs)
  [pre-copy, per round]  PAGES round=N <- PAGES_READY; a page stream; PAGES_SENT <- PAGES_OK
  ---- frozen from here ----
  PAGES round=0 (final; lazy for post-copy) <- PAGES_READY; the page stream opens
  [copy]   ROOTFS + tree <- ROOTFS_OK  (what changed since the first pass)
  [not lazy] PAGES_SENT <- PAGES_OK
  IMAGES + tree                <- IMAGES_OK
  RESTORE                      <- HELD    (restored, held before it resumes: holds.py)
  GO                           <- RUNNING (resumed and on its bridge)
  ---- runs on the destination ----
  [post-copy]                  <- LAZY_DONE (every page arrived) or LAZY_FAILED
  COMMIT (the source's copy is gone)
Either side may send ERROR instead of an answer; the source may send ABORT until GO. Until GO the
destination never runs the pod, and the source keeps a stopped copy it can revive (revive.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ansible_collections.autopod.autopod.plugins.module_utils import criu as criu_driver
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.migration.pause_model import (
    AUTO, POST_COPY, PRE_COPY, STOP_AND_COPY, over_budget)

HELLO, READY, PLAN, PLAN_OK = "hello", "ready", "plan", "plan_ok"
CPUINFO, CPU_OK = "cpuinfo", "cpu_ok"
ROOTFS_SCAN, ROOTFS_STATE, ROOTFS, ROOTFS_OK = "rootfs_scan", "rootfs_state", "rootfs", "rootfs_ok"
PAGES, PAGES_READY, PAGES_SENT, PAGES_OK = "pages", "pages_ready", "pages_sent", "pages_ok"
IMAGES, IMAGES_OK = "images", "images_ok"
RESTORE, HELD, GO, RUNNING = "restore", "held", "go", "running"
LAZY_DONE, LAZY_FAILED, COMMIT, ABORT, ERROR = "lazy_done", "lazy_failed", "commit", "abort", "error"
STREAM_CONTROL, STREAM_PAGES = "control", "pages"

STRATEGIES = (AUTO, POST_COPY, PRE_COPY, STOP_AND_COPY)
STORAGE = ("copy", "shared")
MEMORY_MARGIN = 64 << 20
# CRIU's page server grows a pipe to 819 pages; above pipe-max-size that fails and post-copy dies
# with "page-pipe: splice: Bad file descriptor" (docs/design.md, "Post-copy").
PIPE_MAX_NEEDED = 3354624


@dataclass
class Limits:
    """How long each side waits. A silent peer (packets dropped) ends every wait; none is unbounded."""

    connect: float = 10.0  # to open a connection
    handshake: float = 10.0  # for a new connection's HELLO, on the receiver
    reply: float = 60.0  # for an answer while the pod still runs on the source
    stall: float = 10.0  # a stream (rootfs, images, pages) without a byte either way
    max_freeze: float = 30.0  # from the freeze until the pod runs on the destination; then the source revives it
    fence_margin: float = 5.0  # beyond the destination's stall limit, before the source revives a post-copied pod
    max_pause_ms: Optional[int] = None  # the pause budget: chooses the strategy, and bounds max_freeze

    def __post_init__(self) -> None:
        if self.max_pause_ms:  # frozen past the budget, the pod is revived on its source
            self.max_freeze = min(self.max_freeze, self.max_pause_ms / 1000.0)

    def to_dict(self) -> Dict[str, float]:
        return dict(self.__dict__)


def hello(token: str, pod: str, stream: str, stream_id: str = "") -> Dict[str, Any]:
    return {"type": HELLO, "token": token, "pod": pod, "stream": stream, "id": stream_id}


def page_stream_id(round_number: int) -> str:
    """Pre-copy rounds are 1, 2, ...; the final dump (or the lazy stream) is 0."""
    return "round-%d" % round_number


def round_dir(number: int) -> str:
    return "pre%d" % number


def pipe_max_size() -> int:
    with open("/proc/sys/fs/pipe-max-size") as handle:
        return int(handle.read())


def post_copy_problem(criu: criu_driver.Criu) -> Optional[str]:
    """Why post-copy cannot run on this host (None when it can)."""
    supported, output = criu.check("uffd-noncoop")
    if not supported:
        return "the kernel lacks non-cooperative userfaultfd (%s)" % (output.splitlines() or ["?"])[-1]
    if pipe_max_size() < PIPE_MAX_NEEDED:
        return ("/proc/sys/fs/pipe-max-size is %d, below the %d bytes CRIU's page server needs "
                "(the autopod.autopod.criu role raises it)" % (pipe_max_size(), PIPE_MAX_NEEDED))
    return None


def pre_copy_problem(criu: criu_driver.Criu) -> Optional[str]:
    """Why pre-copy cannot run on this host (None when it can): it needs soft-dirty page tracking."""
    supported, output = criu.check("mem_dirty_track")
    if not supported:
        return "the kernel has no soft-dirty page tracking (`criu check --feature mem_dirty_track`: %s)" \
            % ((output.splitlines() or ["no output"])[-1])
    return None


def resolve_strategy(asked: str, post_copy_local: Optional[str], post_copy_remote_ok: bool,
                     pre_copy_local: Optional[str], memory: int = 0, max_pause_ms: Optional[int] = None) -> str:
    """The strategy to use: the one asked for if possible (else an error), or for `auto` the best one
    possible: post-copy (shortest pause), else pre-copy (only the source needs soft-dirty tracking),
    else stop-and-copy. With a pause budget, a strategy whose expected pause for `memory` bytes is over
    it is not possible either (pause_model.py); when none is left, the move does not start."""
    post_copy = post_copy_local or (None if post_copy_remote_ok else "the destination cannot do post-copy")
    problems = {POST_COPY: post_copy, PRE_COPY: pre_copy_local, STOP_AND_COPY: None}
    for strategy in problems:
        problems[strategy] = problems[strategy] or over_budget(strategy, memory, max_pause_ms)
    if asked != AUTO:
        if problems[asked]:
            raise AutopodError("%s is not possible: %s" % (asked, problems[asked]))
        return asked
    possible = [strategy for strategy in (POST_COPY, PRE_COPY, STOP_AND_COPY) if not problems[strategy]]
    if not possible:
        raise AutopodError("no strategy fits: %s" % "; ".join("%s: %s" % item for item in problems.items()))
    return possible[0]


def image_files(image_dir: str) -> list:
    """The image files of the last dump (pre-copy rounds' directories travelled with their rounds)."""
    return sorted(name for name in os.listdir(image_dir)
                  if os.path.isfile(os.path.join(image_dir, name)) and not os.path.islink(os.path.join(image_dir, name)))
