"""Names, addresses and paths of the lab. Everything the lab makes is named here.

All addresses are in 10.220.0.0/24 and live only in network namespaces the lab creates:
  aplab-switch    the lab's switch: a bridge that every other namespace is wired to
  aplab-ctl       the controller's seat (10.220.0.2): SSH from Ansible reaches the hosts through it
  aplab-client    a client host (10.220.0.3) for services in pods
  aplab-<host>    one per lab host (10.220.0.11, .12, ...): its NIC eth0 is enslaved to a bridge
                  br0 that carries the host's address, so pods on br0 are on the same segment
Pods started by tests and the demo take addresses from 10.220.0.100 on.
"""

from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_ROOT = "/var/lib/autopod-lab"
NETNS_DIR = "/run/netns"
PREFIXLEN = 24
SWITCH_NETNS = "aplab-switch"
SWITCH_BRIDGE = "labsw0"
CONTROLLER_NETNS, CONTROLLER_IP = "aplab-ctl", "10.220.0.2"
CLIENT_NETNS, CLIENT_IP = "aplab-client", "10.220.0.3"
HOST_BRIDGE = "br0"
POD_ADDRESS_BASE = 100
SHARED_DIR = "/srv/autopod-shared"  # storage every lab host mounts at the same path
SHARED_REPO = SHARED_DIR + "/repo"  # the lab's apt repository, as lab hosts see it
BOOT_ID_FILE = "/run/autopod-lab/boot_id"  # written by each lab host at every boot
REBOOT_COMMAND = "kill -USR1 1"  # asks the lab host's init to reboot it
REBOOT_EXIT, HALT_EXIT = 100, 0  # how a lab host's init tells its keeper what to do next


def host_name(index: int) -> str:
    return "lab%d" % index


def host_index(host: str) -> int:
    return int(host[len("lab"):])


def host_ip(index: int) -> str:
    return "10.220.0.%d" % (10 + index)


def pod_ip(offset: int) -> str:
    return "10.220.0.%d" % (POD_ADDRESS_BASE + offset)


def netns_path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def host_netns(host: str) -> str:
    return "aplab-" + host


def host_dir(host: str) -> str:
    return os.path.join(LAB_ROOT, "hosts", host)


def ssh_dir() -> str:
    return os.path.join(LAB_ROOT, "ssh")


def control_path_dir() -> str:
    return os.path.join(ssh_dir(), "cp")


def private_key() -> str:
    return os.path.join(ssh_dir(), "id_ed25519")


def inventory_path() -> str:
    return os.path.join(LAB_ROOT, "inventory.ini")


def shared_source() -> str:
    return os.path.join(LAB_ROOT, "shared")


def repo_dir() -> str:
    """The lab's apt repository, as the machine sees it."""
    return os.path.join(shared_source(), "repo")


def python() -> str:
    return os.path.join(ROOT, ".venv", "bin", "python")
