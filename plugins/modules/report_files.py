#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# The documentation of the action plugin plugins/action/report_files.py, which does all the work on the
# controller: there is no module to send to a host.
DOCUMENTATION = r"""
module: report_files
short_description: Write a run's report files on the controller
version_added: 0.2.0
description:
  - Writes each of O(files) into O(dir) on the controller (the machine running Ansible, or AWX's execution
    environment), in one step and without sending a module anywhere, as M(ansible.builtin.fetch) writes there.
    The rolling patch's report (JSON, Markdown, HTML) is written with it; with a directory, a copy and two
    templates the same report took four module runs, about 3 s of every run.
  - Each file is replaced whole (written beside it, then renamed), mode C(0644), and only when its content or
    mode differs.
  - Refuses, before writing anything, a file name that is not a plain name in O(dir) (a path, V(.) or V(..)), or a name given twice.
extends_documentation_fragment:
  - autopod.autopod.common.ATTRIBUTES
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  dir:
    description: The directory to write into; made (mode C(0755)) when missing.
    type: path
    required: true
  files:
    description: The files to write.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The file's name in O(dir), a plain name, not a path.
        type: str
        required: true
      content:
        description: The file's content (text).
        type: str
        required: true
author:
  - AutoPod team (@autopod)
"""

EXAMPLES = r"""
- name: Write the report
  autopod.autopod.report_files:
    dir: "{{ lookup('ansible.builtin.env', 'HOME') }}/autopod-reports"
    files:
      - name: "{{ run_name }}.json"
        content: "{{ summary | to_nice_json }}"
      - name: "{{ run_name }}.md"
        content: "{{ lookup('ansible.builtin.template', 'report.md.j2') }}"
"""

RETURN = r"""
paths:
  description: Every file of O(files), as a path on the controller.
  returned: success
  type: list
  elements: str
  sample: ["/root/autopod-reports/awx-job-42.json"]
written:
  description: The files whose content changed (or would, in check mode).
  returned: success
  type: list
  elements: str
  sample: ["/root/autopod-reports/awx-job-42.json"]
"""
