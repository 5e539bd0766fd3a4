# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SUSE: zypper (XML output), needs-rebooting, /run/reboot-needed."""

from __future__ import annotations

import os
import shutil
from xml.etree import ElementTree
from typing import List, Optional

from ansible_collections.autopod.autopod.plugins.module_utils import commands
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.package_managers.base import Backend, Unknown, Update

REBOOT_NEEDED = "/run/reboot-needed"
ZYPP_PID = "/run/zypp.pid"


def _updates(xml_text: str) -> List[ElementTree.Element]:
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError as exc:
        raise Unknown("zypper's XML output is malformed: %s" % exc)
    return root.findall("./update-status/update-list/update")


def parse_list_updates(xml_text: str) -> List[Update]:
    """`zypper --xmlout list-updates`: one <update kind="package"> per package with edition and edition-old."""
    updates = []
    for node in _updates(xml_text):
        source = node.find("source")
        updates.append(Update(name=node.get("name"), installed=node.get("edition-old"), candidate=node.get("edition"),
                              arch=node.get("arch"), security=False,
                              source=source.get("alias") if source is not None else None))
    return updates


def parse_security_patches(xml_text: str) -> List[Update]:
    """`zypper --xmlout list-patches --category security`: needed security patches.

    SUSE ships security fixes as patches; each needed one is reported as an update of kind
    patch, so the security policy sees it even though the packages it carries are listed apart.
    """
    patches = []
    for node in _updates(xml_text):
        if node.get("status", "needed") != "needed":
            continue
        source = node.find("source")
        patches.append(Update(name=node.get("name"), installed=None, candidate=node.get("edition"),
                              arch=node.get("arch"), security=True, advisory=node.get("name"),
                              source=source.get("alias") if source is not None else None))
    return patches


class Zypper(Backend):
    name = "zypper"

    def present(self) -> bool:
        return bool(shutil.which("zypper"))

    def lock_holder(self) -> Optional[str]:
        """libzypp's lock is a PID file, not a POSIX lock: held while that process lives."""
        try:
            with open(ZYPP_PID) as handle:
                pid = int(handle.read().strip() or 0)
        except (OSError, ValueError):
            return None
        return "PID %d" % pid if pid and os.path.exists("/proc/%d" % pid) else None

    def _zypper(self, *args: str, timeout: float = 600) -> commands.Result:
        return commands.run(["zypper", "--non-interactive"] + list(args), timeout=timeout)

    def refresh(self) -> None:
        self.ensure_unlocked("refresh the repositories")
        result = self._zypper("refresh")
        if result.rc != 0:
            raise AutopodError("the zypper repositories could not be refreshed: %s" % result.brief())

    def updates(self) -> List[Update]:
        holder = self.lock_holder()
        if holder:
            raise Unknown("the package database is locked by %s (libzypp): a package operation is in progress" % holder)
        packages = self._zypper("--no-refresh", "--xmlout", "list-updates")
        patches = self._zypper("--no-refresh", "--xmlout", "list-patches", "--category", "security")
        for result in (packages, patches):
            if result.rc != 0:
                raise Unknown(result.brief())
        return parse_list_updates(packages.out) + parse_security_patches(patches.out)

    def reboot_reasons(self) -> List[str]:
        """`zypper needs-rebooting` exits 102 when a reboot is needed; libzypp also leaves /run/reboot-needed."""
        reasons = []
        if os.path.exists(REBOOT_NEEDED):
            reasons.append("%s exists" % REBOOT_NEEDED)
        result = self._zypper("needs-rebooting", timeout=120)
        if result.rc == 102:
            reasons.append("zypper needs-rebooting: core libraries or services have been updated")
        elif result.rc != 0:
            raise Unknown("zypper needs-rebooting: %s" % result.brief())
        return reasons

    def services_needing_restart(self) -> Optional[List[str]]:
        result = self._zypper("ps", "-sss", timeout=120)
        return sorted({line.strip() for line in result.out.splitlines() if line.strip()}) if result.rc == 0 else None
