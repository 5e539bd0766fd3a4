"""The rolling patch's HTML report, rendered by the role's own template and looked at in a real headless
browser (Chromium from Debian): its timeline must show the hosts' patches and the pods' moves."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

from PIL import Image

from tests.support.ansible_cli import ROOT, module, playbook

SUMMARY = {
    "owner": "awx-job-42", "started_at": "2026-12-02T08:00:00.000000", "finished_at": "2026-12-02T08:02:00",
    "rollout_stopped": False, "dry_run": False,
    "hosts": {host: {"result": "patched", "patched_at": "2026-12-02T08:%02d:10.5" % (index * 40 // 60),
                     "rebooted": True, "reboot_seconds": 3, "packages_updated": 1}
              for index, host in enumerate(["web1", "web2", "web3"])},
    "moves": [{"at": "2026-12-02T08:%02d:%02d.250000" % ((30 * i + 5) // 60, (30 * i + 5) % 60), "pod": pod,
               "phase": phase, "from": "web1", "to": "web2", "ok": True, "result": "moved",
               "strategy": "post-copy", "downtime_ms": 140 + i, "bytes": 20 << 20, "runs_on": "web2"}
              for i, (pod, phase) in enumerate([("redis", "evacuate"), ("redis", "return"),
                                                ("pg", "evacuate"), ("pg", "return")])],
}
RENDER = """
- name: Render the report page
  hosts: all
  gather_facts: false
  tasks:
    - name: The role's template, as patch_report writes it
      ansible.builtin.template:
        src: {template}
        dest: {dest}
        mode: "0644"
"""


def _chromium() -> str:
    path = shutil.which("chromium")
    assert path, "chromium is missing: run scripts/setup.sh (it installs Debian's chromium)"
    return path


def test_the_html_report_shows_its_timeline_in_a_real_browser(tmp_path):
    page, shot = tmp_path / "report.html", tmp_path / "report.png"
    play = tmp_path / "render.yml"
    play.write_text(RENDER.format(template=os.path.join(ROOT, "roles", "patch_report", "templates", "report.html.j2"),
                                  dest=page))
    rendered = playbook(str(play), {"patch_report_summary": SUMMARY})
    assert rendered.returncode == 0, rendered.stdout
    html = page.read_text()
    assert html.count("<circle") == 4 and html.count('fill="#3a7"') == 3 and "awx-job-42" in html
    shown = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            "--window-size=1100,700", "--screenshot=%s" % shot, "file://%s" % page],
                           capture_output=True, text=True, timeout=120, check=False)
    assert shown.returncode == 0 and shot.exists() and shot.stat().st_size > 0, shown.stderr[-2000:]
    colours = set(Image.open(shot).convert("RGB").getdata())
    assert (0x33, 0x77, 0xcc) in colours, "no move's dot was drawn"  # #37c
    assert (0x33, 0xaa, 0x77) in colours, "no host's patch was drawn"  # #3a7
    assert (0xf4, 0xc5, 0x42) in colours, "no host's time away was drawn"


def _write(target, files, check=False):
    """report_files into `target`, as `ansible localhost -m`; its result."""
    entries = [{"name": name, "content": content} for name, content in files.items()]
    return module("report_files", {"dir": str(target), "files": entries}, check=check)


def test_report_files_writes_on_the_controller_once_and_refuses_a_path(tmp_path):
    files = {"run-1.json": '{"a": 1}\n', "run-1.md": "# run 1\n"}
    target = tmp_path / "reports"
    planned = _write(target, files, check=True)
    assert planned.get("failed") is not True, planned
    assert planned["changed"] is True and not target.exists(), "a dry run wrote"
    result = _write(target, files)
    assert result.get("failed") is not True, result
    assert result["changed"] is True and sorted(result["written"]) == sorted(str(target / n) for n in files)
    for name, content in files.items():
        assert (target / name).read_text() == content
        assert stat.S_IMODE((target / name).stat().st_mode) == 0o644
    assert sorted(os.listdir(target)) == sorted(files), "a temporary file was left"
    again = _write(target, files)
    assert again.get("failed") is not True and again["changed"] is False and again["written"] == [], again
    refused = _write(target, {"run-2.md": "# run 2\n", "../escape.md": "x"})
    assert refused.get("failed") is True and "plain file names" in refused["msg"], refused
    assert not (target / "run-2.md").exists() and not (tmp_path / "escape.md").exists()
