"""Debian's kernel packages for the lab's QEMU guests, fetched with apt from Debian's own archive.

Two series: bookworm's 6.1 and bookworm-backports' 6.12. For each, the kernel image package and the
`linux-image-amd64` metapackage that depends on it (so that a guest's `apt-get dist-upgrade` moves
it from one to the other, as on a real host), plus what their maintainer scripts need that the
machine lacks (kmod, linux-base). apt runs with a private configuration and cache, so the machine's
own sources and package lists are not touched; downloads are kept under CACHE and reused.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from typing import Dict, List

CACHE = "/var/cache/autopod-lab/kernels"
_SOURCES = ("deb http://deb.debian.org/debian bookworm main\n"
            "deb http://deb.debian.org/debian-security bookworm-security main\n"
            "deb http://deb.debian.org/debian bookworm-updates main\n"
            "deb http://deb.debian.org/debian bookworm-backports main\n")
SERIES = ("6.1", "6.12")
SUPPORT_PACKAGES = ("kmod", "linux-base")


@dataclass(frozen=True)
class Kernel:
    series: str          # "6.1"
    release: str         # what `uname -r` says: "6.1.0-56-amd64"
    version: str         # the Debian package version of the image and of linux-image-amd64
    debs: tuple          # the image package and the metapackage, paths under CACHE


def _apt_options() -> List[str]:
    lists = os.path.join(CACHE, "lists")
    os.makedirs(os.path.join(lists, "partial"), exist_ok=True)
    sources = os.path.join(CACHE, "sources.list")
    with open(sources, "w") as handle:
        handle.write(_SOURCES)
    return ["-o", "Dir::Etc::SourceList=" + sources, "-o", "Dir::Etc::SourceParts=/nonexistent",
            "-o", "Dir::State::Lists=" + lists, "-o", "Dir::Cache=" + os.path.join(CACHE, "apt-cache"),
            "-o", "Acquire::Languages=none", "-o", "APT::Sandbox::User=root", "-q"]


def _metapackage_versions(options: List[str]) -> Dict[str, str]:
    """{version of linux-image-amd64: the image package it depends on}, every version the archive has."""
    shown = subprocess.run(["apt-cache"] + options + ["show", "linux-image-amd64"], check=True,
                           stdout=subprocess.PIPE, text=True).stdout
    found = {}
    for stanza in shown.split("\n\n"):
        version = re.search(r"^Version: (\S+)$", stanza, re.M)
        image = re.search(r"^Depends: (linux-image-\S+)", stanza, re.M)
        if version and image:
            found[version.group(1)] = image.group(1)
    return found


def _newest_of_series(candidates: Dict[str, str], series: str) -> str:
    matching = [v for v in candidates if v.startswith(series + ".")]
    if not matching:
        raise RuntimeError("Debian's archive has no linux-image-amd64 of the %s series" % series)
    return max(matching, key=lambda v: [int(n) for n in re.findall(r"\d+", v)])


def _download(options: List[str], specs: List[str]) -> None:
    os.makedirs(os.path.join(CACHE, "apt-cache", "archives", "partial"), exist_ok=True)
    subprocess.run(["apt-get"] + options + ["download"] + specs, cwd=CACHE, check=True,
                   stdout=subprocess.DEVNULL)


def _deb_path(package: str, version: str) -> str:
    architecture = "all" if package == "linux-base" else "amd64"
    return os.path.join(CACHE, "%s_%s_%s.deb" % (package, version.replace(":", "%3a"), architecture))


def support_debs() -> List[str]:
    """The support packages fetch() downloaded."""
    return sorted(os.path.join(CACHE, name) for name in os.listdir(CACHE)
                  if name.endswith(".deb") and name.split("_")[0] in SUPPORT_PACKAGES)


def fetch() -> Dict[str, "Kernel"]:
    """Download (or reuse) both kernel series and the support packages; returns the kernels by series."""
    os.makedirs(CACHE, mode=0o755, exist_ok=True)
    options = _apt_options()
    subprocess.run(["apt-get"] + options + ["update"], check=True, stdout=subprocess.DEVNULL)
    candidates = _metapackage_versions(options)
    kernels = {}
    for series in SERIES:
        version = _newest_of_series(candidates, series)
        image = candidates[version]
        debs = (_deb_path(image, version), _deb_path("linux-image-amd64", version))
        if not all(os.path.exists(path) for path in debs):
            _download(options, ["%s=%s" % (image, version), "linux-image-amd64=%s" % version])
        kernels[series] = Kernel(series, image[len("linux-image-"):], version, debs)
    for package in SUPPORT_PACKAGES:
        version = subprocess.run(["apt-cache"] + options + ["policy", package], check=True, stdout=subprocess.PIPE,
                                 text=True).stdout.split("Candidate:")[1].split()[0]
        if not os.path.exists(_deb_path(package, version)):
            _download(options, ["%s=%s" % (package, version)])
    return kernels
