# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RHEL, Fedora and relatives: dnf (4 or 5), rpm, needs-restarting."""

from __future__ import annotations

import re
import shutil
from typing import Dict, List, Optional

from ansible_collections.autopod.autopod.plugins.module_utils import commands
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.package_managers.base import Backend, Unknown, Update

_NEVRA = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)-(?P<release>[^-]+)\.(?P<arch>[^.]+)$")


def parse_check_update(text: str) -> List[Dict[str, str]]:
    """`dnf -q check-update` (exit 100 when updates wait): "name.arch  version-release  repo" per line.

    Lines after "Obsoleting Packages" describe replacements, not updates, and stop the list.
    """
    found = []
    for line in text.splitlines():
        if line.startswith("Obsoleting"):
            break
        fields = line.split()
        if len(fields) != 3 or "." not in fields[0]:
            if line.strip() and not line.startswith(" "):
                raise Unknown("unexpected line in `dnf check-update`: %r" % line)
            continue
        name, _dot, arch = fields[0].rpartition(".")
        found.append({"name": name, "arch": arch, "candidate": fields[1], "repo": fields[2]})
    return found


def parse_security_advisories(text: str) -> Dict[str, str]:
    """`dnf -q updateinfo list --updates --security` -> {name.arch: advisory}.

    dnf 4 prints "ADVISORY  Severity/Sec.  nevra"; dnf 5 (where updateinfo is `advisory`) prints a header
    and "ADVISORY  type  severity  nevra  issued-date issued-time" (the format of dnf5's own tests,
    ci-dnf-stack dnf-behave-tests/dnf/updateinfo.feature). The package is the field shaped like a NEVRA;
    a line without one is not silently skipped: it makes the list unknown.
    """
    advisories = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[:2] == ["Name", "Type"]:
            continue
        nevras = [m for m in (_NEVRA.match(f) for f in fields[1:]) if m]
        if not nevras:
            raise Unknown("unexpected line in the security advisories: %r" % line)
        advisories["%s.%s" % (nevras[0].group("name"), nevras[0].group("arch"))] = fields[0]
    return advisories


def parse_installed(text: str) -> Dict[str, str]:
    """`rpm -q --qf '%{NAME}.%{ARCH} %{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n'` -> {name.arch: version-release}."""
    installed = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2:
            epoch, _colon, evr = fields[1].partition(":")
            installed[fields[0]] = evr if epoch == "0" else fields[1]
    return installed


class Dnf(Backend):
    name = "dnf"
    lock_files = ("/var/lib/rpm/.rpm.lock", "/usr/lib/sysimage/rpm/.rpm.lock")

    def __init__(self) -> None:
        self.binary = shutil.which("dnf") or shutil.which("dnf5") or "dnf"

    def present(self) -> bool:
        return bool((shutil.which("dnf") or shutil.which("dnf5")) and shutil.which("rpm"))

    def _dnf(self, *args: str, timeout: float = 600) -> commands.Result:
        return commands.run([self.binary, "-q", "--color=never"] + list(args), timeout=timeout)

    def refresh(self) -> None:
        self.ensure_unlocked("refresh the package cache")
        result = self._dnf("makecache", "--refresh")
        if result.rc != 0:
            raise AutopodError("the dnf metadata could not be refreshed: %s" % result.brief())

    def updates(self) -> List[Update]:
        holder = self.lock_holder()
        if holder:
            raise Unknown("the rpm database is locked by %s: a package operation is in progress" % holder)
        listing = self._dnf("check-update", "--cacheonly")
        if listing.rc not in (0, 100):
            raise Unknown(listing.brief())
        pending = parse_check_update(listing.out)
        if not pending:
            return []
        advisories = self._dnf("updateinfo", "list", "--updates", "--security", "--cacheonly")
        if advisories.rc != 0:
            raise Unknown("security advisories: %s" % advisories.brief())
        security = parse_security_advisories(advisories.out)
        names = sorted({p["name"] for p in pending})
        installed = parse_installed(commands.run(
            ["rpm", "-q", "--qf", "%{NAME}.%{ARCH} %{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n"] + names).out)
        return [Update(name=p["name"], installed=installed.get("%s.%s" % (p["name"], p["arch"])),
                       candidate=p["candidate"], arch=p["arch"],
                       security="%s.%s" % (p["name"], p["arch"]) in security, source=p["repo"],
                       advisory=security.get("%s.%s" % (p["name"], p["arch"])))
                for p in pending]

    def reboot_reasons(self) -> List[str]:
        """`needs-restarting -r` exits 1 when core packages changed since boot (dnf 4 plugin and dnf 5 alike)."""
        result = self._dnf("needs-restarting", "-r", timeout=120)
        if result.rc == 0:
            return []
        if result.rc == 1:
            changed = [line.strip()[2:] for line in result.out.splitlines() if line.strip().startswith("* ")]
            return ["needs-restarting -r: updated since boot: %s" % (", ".join(changed) or "core packages")]
        raise Unknown("needs-restarting is not available (%s); install dnf-plugins-core" % result.brief())

    def services_needing_restart(self) -> Optional[List[str]]:
        result = self._dnf("needs-restarting", "-s", timeout=120)
        return [line.strip() for line in result.out.splitlines() if line.strip()] if result.rc == 0 else None
