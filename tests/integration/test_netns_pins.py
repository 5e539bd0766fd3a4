"""Named network namespaces survive `ip netns` (and Podman) stacking a mount over /run/netns."""

from __future__ import annotations

import os
import subprocess
import sys

# Runs in a private mount namespace, so that what it mounts and unmounts is invisible to the machine.
_FRESH_MACHINE_THEN_IP_NETNS = r"""
import os, subprocess
from ansible_collections.autopod.autopod.plugins.module_utils import linux, network

def is_mount_point(path):
    return any(line.split()[4] == path for line in open("/proc/self/mountinfo"))

while is_mount_point(network.NETNS_DIR):  # as on a machine where nothing has used `ip netns` since boot
    linux.umount2(network.NETNS_DIR, linux.MNT_DETACH)
ours = network.netns_path("it-pinned-first")  # a leftover of a failed run is an it- pod's: the suite removes it
network.create_netns(ours)
subprocess.run(["ip", "netns", "add", "it-pinned-by-ip"], check=True)
subprocess.run(["ip", "netns", "del", "it-pinned-by-ip"], check=True)
print(network.remove_netns(ours), os.path.exists(ours))
"""


def test_a_namespace_pinned_before_ip_netns_can_still_be_removed():
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c",
                           _FRESH_MACHINE_THEN_IP_NETNS], capture_output=True, text=True, check=False,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]
