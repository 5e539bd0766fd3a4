# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options several modules share, defined once and merged into each module's argument spec (as
community.docker's DOCKER_COMMON_ARGS). Their documentation is plugins/doc_fragments/common.py, and
meta/runtime.yml groups the modules by the options they take, so that module_defaults can set each
option once: group/autopod.autopod.pods (state_dir) and group/autopod.autopod.criu (criu_path).
"""

from __future__ import annotations

from ansible_collections.autopod.autopod.plugins.module_utils.migration.credentials import (
    CREDENTIALS_SPEC, ENCRYPTION)

STATE_DIR_ARGS = dict(state_dir=dict(type="path", default="/var/lib/autopod"))
CRIU_ARGS = dict(criu_path=dict(type="path", default="criu"))
MOVE_ARGS = dict(
    credentials=dict(type="dict", required=True, no_log=True, options=CREDENTIALS_SPEC),
    encryption=dict(type="str", choices=list(ENCRYPTION), default="tls"),
)
