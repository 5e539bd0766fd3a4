#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: patch_status
short_description: What a host needs before it is safe and current
version_added: 0.1.0
description:
  - Reports pending updates (which of them are security updates), whether a reboot is required and why, services
    running outdated code, and whether the host needs patching under a policy.
  - Reboot signals are every one the distribution gives, plus the running kernel against the newest kernel image in
    C(/boot)
    - Debian and Ubuntu, C(/var/run/reboot-required) and C(.pkgs), and C(needrestart -b) where installed;
    - RHEL and Fedora, C(needs-restarting -r) (dnf 4 plugin, dnf 5);
    - SUSE, C(zypper needs-rebooting) (exit code 102) and C(/run/reboot-needed).
  - Read-only. It never installs, removes or upgrades anything; with O(refresh=true) it updates the package cache,
    the only thing it reports as a change.
  - What cannot be determined (a locked package database, a failing tool, an unexpected output) is named in
    RV(unknown) with the reason and RV(partial) is true; RV(needs_patching) is null when the policy depends on it.
  - Honours the package manager's own environment, for example C(APT_CONFIG) set with the task's C(environment).
extends_documentation_fragment:
  - autopod.autopod.common.ATTRIBUTES
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: A run with O(refresh=true) refreshes the cache again and reports a change.
options:
  policy:
    description:
      - When the host needs patching. V(security), security updates are pending or a reboot is required. V(all), any
        update is pending or a reboot is required. V(reboot), a reboot is required.
    type: str
    choices: [security, all, reboot]
    default: security
  refresh:
    description: Refresh the package cache first (C(apt-get update), C(dnf makecache), C(zypper refresh)).
    type: bool
    default: false
  backend:
    description: The package manager; V(auto) picks the first of apt, dnf, zypper present on the host.
    type: str
    choices: [auto, apt, dnf, zypper]
    default: auto
  exclude:
    description: Package name patterns (shell-style, V(linux-*)) that are not counted. Excluded names are returned.
    type: list
    elements: str
    default: []
  fact_path:
    description:
      - Also write the result as JSON to this file, for example C(/etc/ansible/facts.d/autopod_patch.fact), where the
        setup module reads it as C(ansible_local.autopod_patch) and fact caches and AWX inventories can see it.
      - Not written in check mode. Writing it is not reported as a change.
    type: path
author:
  - AutoPod team (@autopod)
"""

EXAMPLES = r"""
- name: Does this host need security patches?
  autopod.autopod.patch_status:
  register: status

- name: Everything pending, cache refreshed, kernels ignored, recorded as a local fact
  autopod.autopod.patch_status:
    policy: all
    refresh: true
    exclude: ["linux-image-*"]
    fact_path: /etc/ansible/facts.d/autopod_patch.fact

- name: Against a private apt configuration
  autopod.autopod.patch_status:
  environment:
    APT_CONFIG: /srv/repo/apt.conf
"""

RETURN = r"""
needs_patching:
  description: The policy's verdict; null when it depends on something that could not be determined.
  returned: always
  type: bool
  sample: true
updates:
  description: Pending updates (null when unknown). SUSE security patches appear as entries named after the patch.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "libc6", "installed": "2.36-9+deb12u4", "candidate": "2.36-9+deb12u7", "arch": "amd64",
            "security": true, "source": "bookworm-security", "advisory": null}]
updates_count:
  description: Number of pending updates after exclusions.
  returned: always
  type: int
  sample: 3
security_count:
  description: Number of those that are security updates.
  returned: always
  type: int
  sample: 1
excluded:
  description: Names of pending updates left out by O(exclude).
  returned: always
  type: list
  elements: str
  sample: ["linux-image-amd64"]
reboot_required:
  description: Whether any signal says a reboot is needed (null when unknown).
  returned: always
  type: bool
  sample: true
reboot_reasons:
  description: Each signal that asks for a reboot, in words.
  returned: always
  type: list
  elements: str
  sample: ["/var/run/reboot-required exists (packages: libc6)"]
services_needing_restart:
  description: Services running outdated code, from needrestart, needs-restarting or zypper ps; null without them.
  returned: always
  type: list
  elements: str
  sample: ["ssh.service"]
running_kernel:
  description: The running kernel release.
  returned: always
  type: str
  sample: 6.1.0-28-amd64
newest_installed_kernel:
  description: The newest kernel release with an image in C(/boot); null when there is none.
  returned: always
  type: str
  sample: 6.1.0-30-amd64
package_manager:
  description: The backend used.
  returned: always
  type: str
  sample: apt
policy:
  description: The policy applied.
  returned: always
  type: str
  sample: security
checked_at:
  description: When the check ran (UTC, ISO 8601).
  returned: always
  type: str
  sample: "2026-11-25T21:40:00Z"
partial:
  description: Whether some fact could not be determined.
  returned: always
  type: bool
  sample: false
unknown:
  returned: always
  type: dict
  description:
    - What could not be determined, and why. V(updates), the pending updates; V(reboot_signal), the package
      manager's own reboot signal (the kernel comparison still settles RV(reboot_required) when it says a reboot
      is needed).
  sample: {"updates": "the package database is locked by PID 4242 (apt-get): a package operation is in progress"}
notes:
  description: Checks that do not apply here, with the reason.
  returned: when a check was skipped
  type: list
  elements: str
  sample: ["no kernel image under /boot: the running kernel is not managed by the package manager here"]
duration_ms:
  description: Time the check took.
  returned: always
  type: float
  sample: 412.5
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.autopod.autopod.plugins.module_utils.module_runner import run_module
from ansible_collections.autopod.autopod.plugins.module_utils.patch_status import check

ARGUMENT_SPEC = dict(
    policy=dict(type="str", choices=["security", "all", "reboot"], default="security"),
    refresh=dict(type="bool", default=False),
    backend=dict(type="str", choices=["auto", "apt", "dnf", "zypper"], default="auto"),
    exclude=dict(type="list", elements="str", default=[]),
    fact_path=dict(type="path"),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    run_module(module, lambda: check(p["backend"], p["policy"], p["refresh"], p["exclude"], p["fact_path"],
                                     module.check_mode))


if __name__ == "__main__":
    main()
