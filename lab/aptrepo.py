"""A local apt repository the lab builds with dpkg-deb, and a private apt configuration that uses only it.

Packages are tiny: a version file, and optionally a maintainer script. A "kernel-like" package's
postinst does what Debian's kernel and libc packages do: it creates /var/run/reboot-required and
appends its name to /var/run/reboot-required.pkgs. Each suite gets a Release file naming its origin;
a suite whose name ends in -security holds security updates, as Debian's and Ubuntu's do.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Iterable, List

REBOOT_POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ]; then
    touch /var/run/reboot-required
    echo "{name}" >> /var/run/reboot-required.pkgs
fi
"""


SUITES = ("autopod-lab", "autopod-lab-security")


@dataclass(frozen=True)
class Package:
    """A package of the lab repository: built here, or a prebuilt .deb (`deb`, e.g. Debian's kernel)."""
    name: str
    version: str
    suite: str
    needs_reboot: bool = False
    provides: str = ""
    deb: str = ""

    @classmethod
    def from_deb(cls, path: str, suite: str) -> "Package":
        fields = subprocess.run(["dpkg-deb", "--field", path, "Package", "Version"], check=True,
                                stdout=subprocess.PIPE, text=True).stdout
        values = dict(line.split(": ", 1) for line in fields.splitlines())
        return cls(values["Package"], values["Version"], suite, deb=path)

    def pool_path(self, repo: str) -> str:
        name = os.path.basename(self.deb) if self.deb else "%s_%s_all.deb" % (self.name, self.version)
        return os.path.join(repo, "pool", self.suite, name)


def build_deb(package: Package, pool: str) -> str:
    """Build one .deb with dpkg-deb; returns its path."""
    with tempfile.TemporaryDirectory() as staging:
        os.makedirs(os.path.join(staging, "DEBIAN"))
        share = os.path.join(staging, "usr", "share", package.name)
        os.makedirs(share)
        with open(os.path.join(share, "version"), "w") as handle:
            handle.write(package.version + "\n")
        with open(os.path.join(staging, "DEBIAN", "control"), "w") as handle:
            handle.write("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: AutoPod lab <lab@example.invalid>\n"
                         "Description: AutoPod lab package %s\n" % (package.name, package.version, package.name))
            if package.provides:
                handle.write("Provides: %s\n" % package.provides)
        if package.needs_reboot:
            postinst = os.path.join(staging, "DEBIAN", "postinst")
            with open(postinst, "w") as handle:
                handle.write(REBOOT_POSTINST.format(name=package.name))
            os.chmod(postinst, 0o755)
        target = package.pool_path(os.path.dirname(os.path.dirname(pool)))
        os.makedirs(pool, exist_ok=True)
        subprocess.run(["dpkg-deb", "--root-owner-group", "--build", staging, target], check=True,
                       stdout=subprocess.DEVNULL)
        return target


def _release(suite: str, files: List[str], base: str) -> str:
    lines = ["Origin: AutoPod-Lab%s" % ("-Security" if suite.endswith("-security") else ""),
             "Label: AutoPod-Lab", "Suite: %s" % suite, "Codename: %s" % suite,
             "Date: %s" % time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime()),
             "Architectures: all amd64 arm64", "Components: main", "SHA256:"]
    for path in files:
        with open(path, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        lines.append(" %s %d %s" % (digest, os.path.getsize(path), os.path.relpath(path, base)))
    return "\n".join(lines) + "\n"


def publish(repo: str, packages: Iterable[Package]) -> None:
    """Make the repository hold exactly `packages`: build them (if missing), take out of the pool whatever
    an earlier publish left there (dpkg-scanpackages indexes every file of a suite's pool), and (re)write
    every suite's index and Release file."""
    by_suite = {suite: [] for suite in SUITES}
    for package in packages:
        path = package.pool_path(repo)
        if package.deb and not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.link(package.deb, path)  # hundreds of MiB: a link, not a copy (same filesystem)
        elif not os.path.exists(path):
            build_deb(package, os.path.dirname(path))
        by_suite.setdefault(package.suite, []).append(package)
    for suite in by_suite:
        base = os.path.join(repo, "dists", suite)
        pool = os.path.join(repo, "pool", suite)
        os.makedirs(pool, exist_ok=True)
        wanted = {os.path.basename(package.pool_path(repo)) for package in by_suite[suite]}
        for name in os.listdir(pool):
            if name not in wanted:
                os.unlink(os.path.join(pool, name))
        index = subprocess.run(["dpkg-scanpackages", "--multiversion", os.path.join("pool", suite)], cwd=repo,
                               check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
        files = []
        for architecture in ("all", "amd64"):
            binary = os.path.join(base, "main", "binary-" + architecture)
            os.makedirs(binary, exist_ok=True)
            stanzas = [s for s in index.split(b"\n\n") if b"\nArchitecture: %s\n" % architecture.encode() in s]
            content = b"".join(s.strip(b"\n") + b"\n\n" for s in stanzas)
            with open(os.path.join(binary, "Packages"), "wb") as handle:
                handle.write(content)
            with gzip.open(os.path.join(binary, "Packages.gz"), "wb") as handle:
                handle.write(content)
            files += [os.path.join(binary, "Packages"), os.path.join(binary, "Packages.gz")]
        with open(os.path.join(base, "Release"), "w") as handle:
            handle.write(_release(suite, files, base))


def configure_host_apt(repo_seen_by_host: str) -> None:
    """Make this (lab) host use only the lab repository, with its own package lists.

    Runs inside a lab host at every boot: like an air-gapped server that points at a local mirror.
    The machine's own sources and lists, visible through the overlay, are not used.
    """
    lists = "/var/lib/apt/autopod-lab-lists"
    for directory in (os.path.join(lists, "partial"), "/etc/apt/autopod-lab.list.d"):
        os.makedirs(directory, exist_ok=True)
    with open("/etc/apt/autopod-lab.list", "w") as handle:
        for suite in SUITES:
            handle.write("deb [trusted=yes] file:%s %s main\n" % (repo_seen_by_host, suite))
    with open("/etc/apt/apt.conf.d/00autopod-lab", "w") as handle:
        handle.write('Dir::Etc::SourceList "/etc/apt/autopod-lab.list";\n'
                     'Dir::Etc::SourceParts "/etc/apt/autopod-lab.list.d";\n'
                     'Dir::State::Lists "%s";\nAcquire::Languages "none";\nAPT::Install-Recommends "false";\n'
                     % lists)


def remove(repo: str) -> None:
    shutil.rmtree(repo, ignore_errors=True)
