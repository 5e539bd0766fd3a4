"""Callback plugin for the tests: write each host's whole task result, `diff` included, as JSON.

The builtin tree callback drops `diff` below -vvv; the tests need to see everything a module returned.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: result_file
type: aggregate
short_description: write raw task results to AUTOPOD_RESULT_DIR/<host>
description: Test helper of the autopod collection.
requirements: [AUTOPOD_RESULT_DIR set in the environment]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "result_file"
    CALLBACK_NEEDS_ENABLED = True

    @staticmethod
    def _write(result, outcome: str) -> None:
        data = dict(result._result)
        data[outcome] = True
        directory = os.environ["AUTOPOD_RESULT_DIR"]
        with open(os.path.join(directory, result._host.get_name()), "w") as handle:
            json.dump(data, handle, default=str)

    def v2_runner_on_ok(self, result, **_kwargs) -> None:
        self._write(result, "ok")

    def v2_runner_on_failed(self, result, **_kwargs) -> None:
        self._write(result, "failed")

    def v2_runner_on_unreachable(self, result, **_kwargs) -> None:
        self._write(result, "unreachable")
