"""A desktop session in a pod: TigerVNC's Xvnc with a clock and a terminal that counts, from Debian.

The session runs as the pod's own user `desk` (made in the rootfs). Its first process is a small
session script: it starts Xvnc on display :1 (VNC on port 5901, no password: the lab only), waits for
the display, then starts xclock and an xterm whose shell counts once a second, writing each number to
the terminal and to /home/desk/counter (so a test can read the count without reading pixels). The
windows have fixed geometries and no window manager moves them, so a screenshot shows the same
layout before and after a move, with the counter and the clock advanced.

The VNC client (vncdotool, from PyPI) stays connected through a move: it talks RFB to Xvnc inside the
pod over one TCP connection, and takes screenshots.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, Dict, List, Tuple

from workloads.rootfs import build_debian_rootfs

CACHE = "/var/cache/autopod-lab/desktop-rootfs"
PACKAGES = "tigervnc-standalone-server,xterm,x11-apps,x11-utils,xfonts-base,procps"
STAMP = ".autopod-desktop-v1"
USER = "desk"
PORT = 5901
SIZE = (800, 600)
# Where the windows are: the terminal's text is the only part of it that changes; the clock's face changes.
XTERM = (10, 10, 484, 316)  # left, top, right, bottom of the xterm window (80x24 of the 'fixed' font, 6x13)
XCLOCK = (520, 10, 720, 210)
_SESSION = """#!/bin/sh
# The desktop session (workloads/desktop.py): Xvnc, then a clock and a counting terminal.
export HOME=/home/desk DISPLAY=:1
exec 2>>/home/desk/session.log  # why a program of the session failed, for whoever looks
mkdir -p -m 1777 /tmp/.X11-unix  # the pod's /tmp is a fresh tmpfs; Xvnc, not root, cannot make it
Xvnc :1 -geometry 800x600 -depth 24 -rfbport 5901 -SecurityTypes None -localhost no -AlwaysShared \\
     -NeverShared=0 -desktop autopod -nolisten tcp -dpi 96 &
while [ ! -S /tmp/.X11-unix/X1 ]; do sleep 0.1; done
xclock -geometry 200x200+520+10 -update 1 &
xterm -geometry 80x24+10+10 -fn fixed -e /bin/sh -c \\
  'n=0; while :; do n=$((n+1)); echo $n > /home/desk/counter; echo "count $n"; sleep 1; done' &
wait
"""


def build_desktop_rootfs(path: str = CACHE) -> str:
    """The desktop's root filesystem, built once (about a minute) and reused while its stamp is there."""
    if os.path.exists(os.path.join(path, STAMP)):
        return path
    shutil.rmtree(path, ignore_errors=True)
    build_debian_rootfs(path, PACKAGES)
    for trim in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                 "usr/share/locale"):
        shutil.rmtree(os.path.join(path, trim), ignore_errors=True)
    subprocess.run(["chroot", path, "useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
    session = os.path.join(path, "usr/local/bin/autopod-desktop")
    with open(session, "w") as handle:
        handle.write(_SESSION)
    os.chmod(session, 0o755)
    open(os.path.join(path, STAMP), "w").close()
    return path


def pod_args(name: str, rootfs: str, address: str, bridge: str) -> Dict[str, Any]:
    return {"name": name, "rootfs": rootfs, "command": ["/usr/local/bin/autopod-desktop"], "user": USER,
            "memory_max": "1G", "network": {"address": address, "bridge": bridge}}


class Viewer:
    """A VNC client that stays connected, on the lab's client host, and takes screenshots."""

    def __init__(self, address: str, netns_path: str) -> None:
        from vncdotool import api  # a test dependency (requirements.txt)
        from ansible_collections.autopod.autopod.plugins.module_utils import linux
        # Twisted connects from the thread that runs its reactor; the reactor thread is started here, in
        # the client host's network namespace, so every socket it opens belongs there.
        with linux.inside_netns(netns_path):
            self.client = api.connect("%s::%d" % (address, PORT), timeout=60)

    def screenshot(self, path: str) -> str:
        self.client.refreshScreen(incremental=False)
        self.client.captureScreen(path)
        return path

    def close(self) -> None:
        self.client.disconnect()


def compare(before: str, after: str, dynamic: List[Tuple[int, int, int, int]]) -> Dict[str, Any]:
    """How two screenshots differ: pixels changed outside the `dynamic` areas (the windows moved, or the
    session is another one, if any did), and inside each dynamic area."""
    from PIL import Image, ImageChops
    first, second = Image.open(before).convert("RGB"), Image.open(after).convert("RGB")
    if first.size != second.size:
        return {"same_size": False}
    difference = ImageChops.difference(first, second).convert("L").point(lambda value: 255 if value else 0)
    inside = []
    for area in dynamic:
        inside.append(difference.crop(area).histogram()[255])
        difference.paste(0, area)
    return {"same_size": True, "changed_outside": difference.histogram()[255],
            "changed_inside": inside}
