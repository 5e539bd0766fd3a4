# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception type the collection raises; modules turn it into fail_json."""

from __future__ import annotations

from typing import Any, Dict


class AutopodError(Exception):
    """An error a sysadmin can act on. `details` go into the module result."""

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details: Dict[str, Any] = details
