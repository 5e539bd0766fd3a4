"""report_files' refusals, which must come before anything is written."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.autopod.autopod.plugins.action.report_files import _refuse_bad_names


@pytest.mark.parametrize("names", [["run.md", "../run.md"], ["sub/run.md"], [".."], [""], ["/etc/passwd"]])
def test_a_name_that_is_not_a_plain_name_is_refused(names):
    with pytest.raises(AnsibleActionFail, match="plain file names"):
        _refuse_bad_names(names)


def test_a_name_given_twice_is_refused():
    with pytest.raises(AnsibleActionFail, match="run.md more than once"):
        _refuse_bad_names(["run.md", "run.json", "run.md"])


def test_plain_names_pass():
    _refuse_bad_names(["awx-job-42.json", "awx-job-42.md", "ansible@ctl-20261203T233441-3z4nvu.html"])
