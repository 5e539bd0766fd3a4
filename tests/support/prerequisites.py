"""Tiers 2 and 3 need root and a working CRIU. Without them a test fails and says what is missing; it never skips."""

from __future__ import annotations

import os
import subprocess

import pytest

CRIU = "/usr/local/sbin/criu"


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (namespaces, mounts, CRIU): run the README's test command as root")


def require_criu() -> str:
    require_root()
    try:
        out = subprocess.run([CRIU, "check"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, timeout=60, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail("CRIU is not usable at %s (%s): run scripts/setup.sh" % (CRIU, exc))
    if "Looks good" not in out:
        pytest.fail("`%s check` failed: %s; run scripts/setup.sh" % (CRIU, out.strip()[-500:]))
    return CRIU
