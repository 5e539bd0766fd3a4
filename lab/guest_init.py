"""PID 1 of a lab guest, started by its initramfs once the root is mounted (see lab/guest.py)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, ".collections")]

from lab import guest  # noqa: E402

guest.guest_init(os.environ["autopod_host"])
