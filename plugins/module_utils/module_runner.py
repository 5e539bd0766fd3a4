# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where AutoPod errors become Ansible results."""

from __future__ import annotations

import traceback
from typing import Any, Callable, Dict

from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError


def run_module(module: Any, action: Callable[[], Dict[str, Any]]) -> None:
    """Run `action` and exit the module with its result, or fail with a message a sysadmin can act on."""
    try:
        result = action()
    except AutopodError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg="unexpected system error: %s" % exc, exception=traceback.format_exc())
    module.exit_json(**result)
