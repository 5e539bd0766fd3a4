"""patch_status's pure parts: the parsers against real outputs, the kernel check and the policies."""

from __future__ import annotations

import os

import pytest

from ansible_collections.autopod.autopod.plugins.module_utils import commands, patch_status
from ansible_collections.autopod.autopod.plugins.module_utils.package_managers import apt, dnf, zypper
from ansible_collections.autopod.autopod.plugins.module_utils.package_managers.base import Unknown

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "pkg")


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def test_apt_list_upgradable_from_a_real_debian_12():
    updates = apt.parse_upgradable(fixture("apt-2.6.1-list-upgradable.txt"))
    assert len(updates) == 135
    by_name = {u.name: u for u in updates}
    apt_pkg = by_name["apt"]
    assert (apt_pkg.installed, apt_pkg.candidate, apt_pkg.arch) == ("2.6.1", "2.6.2", "amd64")
    assert apt_pkg.security and apt_pkg.source == "oldstable-security"
    assert not by_name["appstream"].security
    assert sum(u.security for u in updates) == 81


def test_apt_garbage_is_unknown_not_empty():
    with pytest.raises(Unknown):
        apt.parse_upgradable("Listing...\nthis is not a package line\n")


def test_needrestart_batch_output():
    report = apt.parse_needrestart(fixture("needrestart-3.6-batch.txt"))
    assert report["services"] == [] and report["kernel"] == {"kcur": "6.18.44-fc-v669", "ksta": "0"}
    report = apt.parse_needrestart("NEEDRESTART-KSTA: 3\nNEEDRESTART-SVC: ssh.service\nNEEDRESTART-SVC: cron.service\n")
    assert report["services"] == ["ssh.service", "cron.service"]


def test_dnf_check_update_security_and_installed():
    pending = dnf.parse_check_update(fixture("dnf-4.14.0-check-update.txt"))
    assert [(p["name"], p["arch"], p["candidate"], p["repo"]) for p in pending] == [
        ("autopod-demo", "noarch", "1.1-1", "fixtures"), ("autopod-libdemo", "noarch", "1.1-1", "fixtures")]
    assert dnf.parse_security_advisories(fixture("dnf-4.14.0-updateinfo-security.txt")) == {
        "autopod-libdemo.noarch": "APOD-2026-0001"}
    assert dnf.parse_installed(fixture("dnf-4.14.0-rpm-installed.txt")) == {
        "autopod-demo.noarch": "1.0-1", "autopod-libdemo.noarch": "1.0-1"}


def _replay(monkeypatch, module, outputs):
    """Make the backend's commands answer with captured outputs: {subcommand word: fixture name}."""
    def run(argv, **_kwargs):
        name = next(fixture_name for word, fixture_name in outputs.items() if word in argv)
        return commands.Result(argv, int(fixture(name + ".rc")), fixture(name), "")
    monkeypatch.setattr(module.commands, "run", run)


def test_the_dnf_backend_reads_exit_100_as_updates_waiting_and_marks_the_security_one(monkeypatch):
    _replay(monkeypatch, dnf, {"check-update": "dnf-4.14.0-check-update.txt",
                               "updateinfo": "dnf-4.14.0-updateinfo-security.txt",
                               "rpm": "dnf-4.14.0-rpm-installed.txt",
                               "needs-restarting": "dnf-4.14.0-needs-restarting-r.txt"})
    monkeypatch.setattr(dnf.Dnf, "lock_holder", lambda self: None)
    updates = {u.name: u for u in dnf.Dnf().updates()}
    assert set(updates) == {"autopod-demo", "autopod-libdemo"}
    assert updates["autopod-libdemo"].security and updates["autopod-libdemo"].advisory == "APOD-2026-0001"
    assert not updates["autopod-demo"].security and updates["autopod-demo"].installed == "1.0-1"
    assert dnf.Dnf().reboot_reasons() == ["needs-restarting -r: updated since boot: glibc"]


def test_dnf5_advisories_in_the_format_of_its_own_tests():
    listing = ("Name                   Type        Severity                   Package              Issued\n"
               "FEDORA-2018-318f184000 security    Important glibc-2.28-26.fc29.x86_64 2019-01-17 00:00:00\n"
               "FEDORA-2999:002-02     security    Moderate  flac-1.3.3-8.fc29.x86_64 2019-01-17 00:00:00\n")
    assert dnf.parse_security_advisories(listing) == {"glibc.x86_64": "FEDORA-2018-318f184000",
                                                      "flac.x86_64": "FEDORA-2999:002-02"}
    with pytest.raises(Unknown, match="unexpected line"):
        dnf.parse_security_advisories("FEDORA-2018-318f184000 security Important (package name missing)\n")


def test_dnf_obsoletes_and_garbage():
    text = "pkg.x86_64  2-1  base\nObsoleting Packages\nnew.x86_64  1-1  base\n    old.x86_64  1-1  @System\n"
    assert [p["name"] for p in dnf.parse_check_update(text)] == ["pkg"]
    with pytest.raises(Unknown):
        dnf.parse_check_update("Error: Failed to download metadata for repo 'base'\n")


def test_zypper_xml():
    packages = zypper.parse_list_updates(fixture("zypper-1.14.42-list-updates.xml"))
    assert [(u.name, u.installed, u.candidate, u.source) for u in packages] == [
        ("autopod-demo", "1.0-1", "1.1-1", "fixtures"), ("autopod-libdemo", "1.0-1", "1.1-1", "fixtures")]
    patches = zypper.parse_security_patches(fixture("zypper-1.14.42-list-patches-security.xml"))
    assert [(p.name, p.security, p.advisory) for p in patches] == [("APOD-2026-0001", True, "APOD-2026-0001")]
    with pytest.raises(Unknown):
        zypper.parse_list_updates("<stream><update-status")


@pytest.mark.parametrize("capture, reasons", [
    ("zypper-1.14.42-needs-rebooting.txt", []),
    ("zypper-1.14.42-needs-rebooting-after-update.txt",
     ["zypper needs-rebooting: core libraries or services have been updated"]),
])
def test_the_zypper_backend_reads_exit_102_as_a_reboot_needed(monkeypatch, capture, reasons):
    _replay(monkeypatch, zypper, {"needs-rebooting": capture})
    monkeypatch.setattr(zypper, "REBOOT_NEEDED", "/nonexistent/reboot-needed")
    assert zypper.Zypper().reboot_reasons() == reasons


@pytest.mark.parametrize("running, installed, outdated", [
    ("6.1.0-28-amd64", ["6.1.0-28-amd64", "6.1.0-30-amd64"], True),
    ("6.1.0-30-amd64", ["6.1.0-9-amd64", "6.1.0-30-amd64"], False),
    ("5.14.0-427.13.1.el9_4.x86_64", ["5.14.0-427.13.1.el9_4.x86_64", "5.14.0-503.11.1.el9_5.x86_64"], True),
    ("6.18.44-fc-v669", [], False),
])
def test_kernel_comparison(running, installed, outdated):
    assert bool(patch_status.kernel_reason(running, sorted(installed, key=patch_status._natural_key))) is outdated


def test_installed_kernels_from_boot(tmp_path):
    for name in ("vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-30-amd64", "config-6.1.0-30-amd64", ".vmlinuz-5.14.hmac"):
        (tmp_path / name).write_text("")
    assert patch_status.installed_kernels(str(tmp_path)) == ["6.1.0-9-amd64", "6.1.0-30-amd64"]


SEC = {"security": True}
PLAIN = {"security": False}


@pytest.mark.parametrize("policy, updates, reboot, verdict", [
    ("security", [SEC], False, True), ("security", [PLAIN], False, False), ("security", [], True, True),
    ("all", [PLAIN], False, True), ("all", [], False, False),
    ("reboot", [SEC], False, False), ("reboot", [], True, True),
    ("security", None, False, None), ("security", None, True, True), ("reboot", None, False, False),
    ("all", [PLAIN], None, True), ("all", [], None, None), ("reboot", [], None, None),
])
def test_policies_and_unknowns(policy, updates, reboot, verdict):
    assert patch_status.needs_patching(policy, updates, reboot) is verdict


class _Signal:
    """A backend whose reboot signal reads as given, or cannot be read."""

    def __init__(self, reasons):
        self.reasons = reasons

    def reboot_reasons(self):
        if self.reasons is None:
            raise Unknown("/var/run/reboot-required: permission denied")
        return list(self.reasons)


@pytest.mark.parametrize("signal, kernel, reasons, required", [
    (None, "running kernel 6.1.0-1 is older than the newest installed kernel 6.1.0-2",
     ["running kernel 6.1.0-1 is older than the newest installed kernel 6.1.0-2"], True),
    (None, None, None, None),
    ([], None, [], False),
    (["libc6"], None, ["libc6"], True),
])
def test_an_unreadable_reboot_signal_keeps_the_kernel_comparison(signal, kernel, reasons, required):
    unknown = {}
    assert patch_status._reboot_verdict(_Signal(signal), kernel, unknown) == (reasons, required)
    assert ("reboot_signal" in unknown) == (signal is None)
