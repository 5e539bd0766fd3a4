# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host needs before it is safe and current: pending updates, reboot signals, policy.

Read-only except for an optional cache refresh and an optional local-facts file. What could
not be determined is named in `unknown` with the reason, and `partial` is true; a decision
that depends on an unknown fact is null, never a silent "nothing to do".
"""

from __future__ import annotations

import fnmatch
import json
import os
import platform
import re
import time
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.package_managers.apt import Apt
from ansible_collections.autopod.autopod.plugins.module_utils.package_managers.base import Backend, Unknown
from ansible_collections.autopod.autopod.plugins.module_utils.package_managers.dnf import Dnf
from ansible_collections.autopod.autopod.plugins.module_utils.package_managers.zypper import Zypper

POLICIES = ("security", "all", "reboot")
BACKENDS = {"apt": Apt, "dnf": Dnf, "zypper": Zypper}
BOOT_DIR = "/boot"


def select_backend(name: str) -> Backend:
    if name != "auto":
        backend = BACKENDS[name]()
        if not backend.present():
            raise AutopodError("backend %s was asked for, but its tools are not installed on this host" % name)
        return backend
    for backend_class in BACKENDS.values():
        backend = backend_class()
        if backend.present():
            return backend
    raise AutopodError("no supported package manager on this host: AutoPod knows apt, dnf and zypper")


def _natural_key(release: str) -> Tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", release))


def installed_kernels(boot_dir: str = BOOT_DIR) -> List[str]:
    """Kernel releases with an image in /boot (vmlinuz-<release>, the layout of Debian, RHEL and SUSE)."""
    try:
        names = os.listdir(boot_dir)
    except OSError:
        return []
    releases = [n[len("vmlinuz-"):] for n in names if n.startswith("vmlinuz-") and not n.endswith(".hmac")]
    return sorted(releases, key=_natural_key)


def kernel_reason(running: str, installed: List[str]) -> Optional[str]:
    if installed and _natural_key(installed[-1]) > _natural_key(running):
        return "running kernel %s is older than the newest installed kernel %s" % (running, installed[-1])
    return None


def needs_patching(policy: str, updates: Optional[List[Dict[str, Any]]], reboot_required: Optional[bool]) -> Optional[bool]:
    """The policy's verdict; None when a fact it depends on is unknown and the known ones do not settle it."""
    if reboot_required:
        return True
    if policy == "reboot":
        return reboot_required
    if updates is None:
        return None
    pending = [u for u in updates if u["security"]] if policy == "security" else updates
    if pending:
        return True
    return None if reboot_required is None else False


def _reboot_verdict(backend: Backend, kernel: Optional[str], unknown: Dict[str, str]
                    ) -> Tuple[Optional[List[str]], Optional[bool]]:
    """(reasons, reboot required). The kernel comparison stands on its own: a reboot signal that cannot be
    read (named in `unknown`) leaves the verdict unknown only when the kernel does not settle it."""
    try:
        signalled: Optional[List[str]] = backend.reboot_reasons()
    except Unknown as exc:
        signalled = None
        unknown["reboot_signal"] = str(exc)
    reasons = (signalled or []) + ([kernel] if kernel else [])
    if reasons:
        return reasons, True
    return (None, None) if signalled is None else ([], False)


def check(backend_name: str, policy: str, refresh: bool, exclude: List[str], fact_path: Optional[str],
          check_mode: bool) -> Dict[str, Any]:
    started = time.monotonic()
    backend = select_backend(backend_name)
    unknown: Dict[str, str] = {}
    if refresh and not check_mode:
        backend.refresh()
    try:
        all_updates = [u.to_dict() for u in backend.updates()]
        updates = [u for u in all_updates if not any(fnmatch.fnmatch(u["name"], p) for p in exclude)]
        excluded = sorted(u["name"] for u in all_updates if u not in updates)
    except Unknown as exc:
        updates, excluded = None, []
        unknown["updates"] = str(exc)
    running = platform.release()
    kernels = installed_kernels()
    reasons, reboot_required = _reboot_verdict(backend, kernel_reason(running, kernels), unknown)
    result: Dict[str, Any] = {
        "changed": bool(refresh),
        "package_manager": backend.name,
        "policy": policy,
        "updates": updates,
        "updates_count": None if updates is None else len(updates),
        "security_count": None if updates is None else sum(1 for u in updates if u["security"]),
        "excluded": excluded,
        "reboot_required": reboot_required,
        "reboot_reasons": reasons,
        "services_needing_restart": backend.services_needing_restart(),
        "running_kernel": running,
        "newest_installed_kernel": kernels[-1] if kernels else None,
        "needs_patching": needs_patching(policy, updates, reboot_required),
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "partial": bool(unknown),
        "unknown": unknown,
    }
    if not kernels:
        result["notes"] = ["no kernel image under %s: the running kernel %s is not managed by the package "
                           "manager here, so it was not compared" % (BOOT_DIR, running)]
    result["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    if fact_path and not check_mode:
        write_fact(fact_path, result)
    return result


def write_fact(path: str, result: Dict[str, Any]) -> None:
    """Write the result where Ansible's setup module reads local facts (ansible_local.<name>)."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump({k: v for k, v in result.items() if k != "changed"}, handle, indent=1, sort_keys=True)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
