# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Debian and Ubuntu: apt, dpkg, /var/run/reboot-required, needrestart."""

from __future__ import annotations

import os
import re
import shutil
from typing import List, Optional

from ansible_collections.autopod.autopod.plugins.module_utils import commands
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.package_managers.base import Backend, Unknown, Update

REBOOT_REQUIRED = "/var/run/reboot-required"
# "name/suite[,suite] version arch [upgradable from: old]" from `apt list --upgradable`
_UPGRADABLE = re.compile(r"^(?P<name>[^/\s]+)/(?P<suites>\S+) (?P<candidate>\S+) (?P<arch>\S+)"
                         r" \[upgradable from: (?P<installed>[^\]]+)\]$")


def parse_upgradable(text: str) -> List[Update]:
    """Parse `apt list --upgradable`. A suite named like *-security marks a security update
    (Debian's bookworm-security, Ubuntu's noble-security)."""
    updates = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(("Listing", "WARNING")):
            continue
        match = _UPGRADABLE.match(line.strip())
        if not match:
            raise Unknown("unexpected line in `apt list --upgradable`: %r" % line)
        suites = match.group("suites")
        updates.append(Update(name=match.group("name"), installed=match.group("installed"),
                              candidate=match.group("candidate"), arch=match.group("arch"),
                              security=any("security" in s.lower() for s in suites.split(",")), source=suites))
    return updates


def parse_needrestart(text: str) -> dict:
    """Parse `needrestart -b`: services to restart and the kernel status (KSTA 3: a newer kernel is installed)."""
    services, kernel = [], {}
    for line in text.splitlines():
        key, _sep, value = line.partition(":")
        value = value.strip()
        if key == "NEEDRESTART-SVC":
            services.append(value)
        elif key in ("NEEDRESTART-KCUR", "NEEDRESTART-KEXP", "NEEDRESTART-KSTA"):
            kernel[key[len("NEEDRESTART-"):].lower()] = value
    return {"services": services, "kernel": kernel}


class Apt(Backend):
    name = "apt"
    lock_files = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock")

    def present(self) -> bool:
        return bool(shutil.which("apt-get") and shutil.which("dpkg"))

    def refresh(self) -> None:
        self.ensure_unlocked("refresh the package cache")
        result = commands.run(["apt-get", "update", "-q"], timeout=600)
        # apt-get update exits 0 even when some sources fail; its "W:"/"E:" lines say so
        failed = [line for line in (result.out + result.err).splitlines() if line.startswith(("E:", "Err:"))]
        if result.rc != 0 or failed:
            raise AutopodError("the apt package cache could not be refreshed: %s"
                               % ("; ".join(failed[:5]) or result.brief()))

    def updates(self) -> List[Update]:
        holder = self.lock_holder()
        if holder:
            raise Unknown("the package database is locked by %s: a package operation is in progress" % holder)
        result = commands.run(["apt", "list", "--upgradable"], timeout=300)
        if result.rc != 0:
            raise Unknown(result.brief())
        return parse_upgradable(result.out)

    def __init__(self) -> None:
        self._needrestart_report: Optional[dict] = None
        self._needrestart_ran = False

    def reboot_reasons(self) -> List[str]:
        reasons = []
        if os.path.exists(REBOOT_REQUIRED):
            reason = "%s exists" % REBOOT_REQUIRED
            try:
                with open(REBOOT_REQUIRED + ".pkgs") as handle:
                    packages = sorted({line.strip() for line in handle if line.strip()})
            except OSError:
                packages = []
            if packages:
                reason += " (packages: %s)" % ", ".join(packages)
            reasons.append(reason)
        return reasons + self._needrestart_kernel()

    def _needrestart(self) -> Optional[dict]:
        """needrestart's batch report, run at most once; None where needrestart is not installed."""
        if not self._needrestart_ran and shutil.which("needrestart"):
            result = commands.run(["needrestart", "-b", "-r", "l"], timeout=120)
            self._needrestart_report = parse_needrestart(result.out) if result.rc == 0 else None
        self._needrestart_ran = True
        return self._needrestart_report

    def _needrestart_kernel(self) -> List[str]:
        report = self._needrestart()
        kernel = report["kernel"] if report else {}
        if kernel.get("ksta") in ("2", "3"):
            return ["needrestart: running kernel %s, expected %s" % (kernel.get("kcur"), kernel.get("kexp"))]
        return []

    def services_needing_restart(self) -> Optional[List[str]]:
        report = self._needrestart()
        return None if report is None else report["services"]
