# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""report_files: write a run's report files on the controller (documented in plugins/modules/report_files.py)."""

from __future__ import annotations

import os
import tempfile
from typing import Any, Dict, List, Optional

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

ARGUMENT_SPEC = dict(
    dir=dict(type="path", required=True),
    files=dict(type="list", elements="dict", required=True,
               options=dict(name=dict(type="str", required=True), content=dict(type="str", required=True))),
)
MODE = 0o644  # a report holds no secret (the moves' credentials are never in it)


def _refuse_bad_names(names: List[str]) -> None:
    bad = [name for name in names if not name or name in (".", "..") or os.path.basename(name) != name]
    if bad:
        raise AnsibleActionFail("report_files writes plain file names into dir, not %s; nothing was written"
                                % ", ".join(repr(name) for name in bad))
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise AnsibleActionFail("report_files got %s more than once; nothing was written" % ", ".join(twice))


def _differs(path: str, content: str) -> bool:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read() != content or (os.stat(path).st_mode & 0o7777) != MODE
    except (FileNotFoundError, UnicodeDecodeError):  # missing, or not a report this step wrote
        return True


def _replace(path: str, content: str) -> None:
    """Write beside `path`, then rename: a reader sees the old report or the new one, never half of one."""
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".report-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(content)
        os.chmod(temporary, MODE)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False  # everything happens on the controller

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        _refuse_bad_names([entry["name"] for entry in args["files"]])
        files = {entry["name"]: entry["content"] for entry in args["files"]}
        directory = os.path.expanduser(args["dir"])
        paths = {name: os.path.join(directory, name) for name in sorted(files)}
        written = [name for name, path in paths.items() if _differs(path, files[name])]
        if written and not self._play_context.check_mode:
            os.makedirs(directory, 0o755, exist_ok=True)
            for name in written:
                _replace(paths[name], files[name])
        result.update(changed=bool(written), paths=list(paths.values()), written=[paths[name] for name in written])
        return result
