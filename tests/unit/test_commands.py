"""commands.wait: the exit code of a started command, or None while it runs on (real processes)."""

from __future__ import annotations

import os

from ansible_collections.autopod.autopod.plugins.module_utils import commands


def test_wait_returns_the_exit_code_of_a_command_that_ends():
    assert commands.wait(commands.start(["sh", "-c", "exit 3"]), 10) == 3


def test_wait_returns_none_while_the_command_runs_and_its_code_once_it_ended():
    process = commands.start(["sleep", "30"])
    try:
        assert commands.wait(process, 0.05) is None
        assert process.poll() is None
    finally:
        process.kill()
    assert commands.wait(process, 10) == -9
    assert commands.wait(process, 0) == -9  # reaped already: the code it had


def test_wait_sees_at_once_a_command_that_ended_before_it_was_called():
    process = commands.start(["true"])
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped: its pidfd is ready
    assert commands.wait(process, 0) == 0
