"""Tiers 2 and 3 need root and a working CRIU. Without them a test fails and says what is missing; it never skips."""

from __future__ import annotations

import os
import subprocess
from typing import Tuple

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


def distribution_criu() -> Tuple[str, str]:
    """(path, upstream version) of the distribution's own criu package, which scripts/setup.sh installs
    next to the collection's: on Debian 12 it is 3.17, too old for this kernel, and tests expect its refusal."""
    query = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "criu"], stdout=subprocess.PIPE,
                           universal_newlines=True, check=False)
    files = subprocess.run(["dpkg-query", "-L", "criu"], stdout=subprocess.PIPE, universal_newlines=True, check=False)
    binaries = [line for line in files.stdout.splitlines() if line.endswith("bin/criu")]
    if query.returncode or not binaries:
        pytest.fail("the distribution's criu package is not installed: run scripts/setup.sh")
    return binaries[0], query.stdout.split(":")[-1].split("-")[0].split("+")[0]
