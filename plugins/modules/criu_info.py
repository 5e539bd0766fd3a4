#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: criu_info
short_description: Report whether CRIU works on a host, and why not
version_added: 0.1.0
description:
  - Finds the criu binary, reads its version, runs C(criu check) and judges the version against the running kernel
    (kernels from 6.13 need CRIU 4.1 or newer; kernels from 6.16 need CRIU 4.2 to dump TCP connections).
  - Read-only. With O(fail_on_problem=true) the task fails with the reason and what to install instead.
extends_documentation_fragment:
  - autopod.autopod.common.ATTRIBUTES
  - autopod.autopod.common.CRIU
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  tcp_established:
    description: Judge the version for pods with established TCP connections.
    type: bool
    default: true
  fail_on_problem:
    description: Fail when CRIU is missing, C(criu check) fails, or the version does not fit the kernel.
    type: bool
    default: false
author:
  - AutoPod team (@autopod)
"""

EXAMPLES = r"""
- name: Make sure CRIU can checkpoint pods here
  autopod.autopod.criu_info:
    criu_path: /usr/local/sbin/criu
    fail_on_problem: true
"""

RETURN = r"""
usable:
  description: Whether CRIU is present, passes C(criu check) and fits the kernel.
  returned: always
  type: bool
  sample: true
path:
  description: The criu binary found.
  returned: when found
  type: str
  sample: /usr/local/sbin/criu
version:
  description: CRIU's version.
  returned: when found
  type: str
  sample: 4.2.1
kernel:
  description: The running kernel release.
  returned: always
  type: str
  sample: 6.18.44
check_output:
  description: What C(criu check) printed.
  returned: when found
  type: str
  sample: Looks good.
problems:
  description: Why CRIU is not usable, with what to do about it.
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.autopod.autopod.plugins.module_utils.common_args import CRIU_ARGS
from ansible_collections.autopod.autopod.plugins.module_utils.criu import assess
from ansible_collections.autopod.autopod.plugins.module_utils.module_runner import run_module

ARGUMENT_SPEC = dict(
    tcp_established=dict(type="bool", default=True),
    fail_on_problem=dict(type="bool", default=False),
    **CRIU_ARGS,
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    run_module(module, lambda: assess(p["criu_path"], p["tcp_established"], p["fail_on_problem"]))


if __name__ == "__main__":
    main()
