"""The rolling patch's HTML report, rendered by the role's own template and looked at in a real headless
browser (Chromium from Debian): its timeline must show the hosts' patches and the pods' moves."""

from __future__ import annotations

import os
import shutil
import subprocess

from PIL import Image

from tests.support.ansible_cli import ROOT, playbook

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
