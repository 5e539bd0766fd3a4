"""Bring the lab up and down, report on it, reboot its hosts, and write its Ansible inventory."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from typing import Dict, List, Sequence

from ansible_collections.autopod.autopod.plugins.module_utils import linux
from lab import aptrepo, guest
from lab import host as lab_host
from lab import topology as topo
from lab import wiring

STATE = os.path.join(topo.LAB_ROOT, "state.json")
READY_TIMEOUT = 30.0
GUEST_READY_TIMEOUT = 240.0  # a kernel, then Python and sshd, all under TCG
NAMESPACE, QEMU = "namespace", "qemu"


def _state() -> Dict[str, object]:
    try:
        with open(STATE) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def _hosts_in_state() -> List[str]:
    return list(_state().get("hosts", []))


def flavour() -> str:
    """"namespace" (the default lab) or "qemu" (guests on real kernels, lab/guest.py)."""
    return str(_state().get("flavour", NAMESPACE))


def _write_ssh_material(hosts: List[str]) -> None:
    os.makedirs(topo.ssh_dir(), mode=0o700, exist_ok=True)
    if not os.path.exists(topo.private_key()):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "autopod-lab", "-f", topo.private_key()],
                       check=True)
    shutil.copy(topo.private_key() + ".pub", os.path.join(topo.ssh_dir(), "authorized_keys"))
    for index, host in enumerate(hosts, start=1):
        base = topo.host_dir(host)
        key = os.path.join(base, "ssh_host_ed25519_key")
        if not os.path.exists(key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        with open(os.path.join(base, "sshd_config"), "w") as handle:
            handle.write("\n".join([
                "ListenAddress %s" % topo.host_ip(index), "Port 22", "HostKey %s" % key, "PidFile /run/sshd.pid",
                "AuthorizedKeysFile %s" % os.path.join(topo.ssh_dir(), "authorized_keys"),
                "PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
                "UsePAM no", "StrictModes no", "PrintMotd no", "MaxStartups 100", "MaxSessions 100",
                "Subsystem sftp /usr/lib/openssh/sftp-server", ""]))


def write_inventory(hosts: List[str], kind: str = NAMESPACE) -> str:
    proxy = "%s %s %%h %%p" % (topo.python(), os.path.join(topo.ROOT, "lab", "proxy.py"))
    lines = ["# The AutoPod lab: written by `scripts/lab up`.", "[lab]"]
    lines += ["%s ansible_host=%s" % (host, topo.host_ip(i)) for i, host in enumerate(hosts, start=1)]
    lines += ["", "[lab:vars]", "ansible_connection=ssh", "ansible_user=root",
              "ansible_ssh_private_key_file=%s" % topo.private_key(),
              "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
              "-o LogLevel=ERROR -o ProxyCommand=\"%s\"'" % proxy,
              "ansible_python_interpreter=%s" % topo.python(),
              # SSH masters of this lab only: one left from an earlier lab at the same address would
              # carry Ansible to a host that no longer exists, and hang
              "ansible_control_path_dir=%s" % topo.control_path_dir(),
              "autopod_bridge=%s" % topo.HOST_BRIDGE,
              "autopod_reboot_command=%s" % topo.REBOOT_COMMAND,
              # guests have a kernel of their own, whose boot id the playbooks read by default
              "autopod_boot_time_command=%s" % ("cat /proc/sys/kernel/random/boot_id" if kind == QEMU
                                                else "cat " + topo.BOOT_ID_FILE),
              "autopod_image_dir=/run/autopod",
              "autopod_criu_path=/usr/local/sbin/criu"]
    if kind == NAMESPACE:  # the hosts share this machine's /usr, whose Debian Python has python3-apt (setup.sh)
        lines.append("autopod_package_python=/usr/bin/python3")
    lines.append("")
    with open(topo.inventory_path(), "w") as handle:
        handle.write("\n".join(lines))
    return topo.inventory_path()


def ssh_ready(index: int, timeout: float = READY_TIMEOUT) -> None:
    """Wait until the host's sshd accepts connections from the controller's seat."""
    deadline = time.monotonic() + timeout
    retry = threading.Event()
    while True:
        with linux.inside_netns(topo.netns_path(topo.CONTROLLER_NETNS)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(1.0)
        try:
            sock.connect((topo.host_ip(index), 22))
            if sock.recv(4).startswith(b"SSH-"):
                return
        except OSError:
            pass
        finally:
            sock.close()
        if time.monotonic() > deadline:
            raise TimeoutError("lab host %d did not answer on SSH within %.0fs" % (index, timeout))
        retry.wait(0.05)


def ssh(host: str, command: str, check: bool = True) -> str:
    """Run a fixed command on a lab host over SSH, as the inventory reaches it; returns its output."""
    proxy = "%s %s %%h %%p" % (topo.python(), os.path.join(topo.ROOT, "lab", "proxy.py"))
    return subprocess.run(["ssh", "-i", topo.private_key(), "-o", "StrictHostKeyChecking=no",
                           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
                           "-o", "ProxyCommand=" + proxy, "root@" + topo.host_ip(topo.host_index(host)), command],
                          check=check, stdout=subprocess.PIPE, text=True, timeout=120).stdout


def boot_id(host: str) -> str:
    """Changes at every boot: what the host's boot-time command reads, or for a guest, its keeper's count."""
    if flavour() == QEMU:
        with contextlib.suppress(OSError, ValueError, KeyError):
            with open(os.path.join(topo.host_dir(host), "init.json")) as handle:
                return "boot-%d" % json.load(handle)["boots"]
        return ""
    pid = lab_host.init_pid(host)
    try:
        with open("/proc/%d/root%s" % (pid, topo.BOOT_ID_FILE)) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def status() -> Dict[str, Dict[str, object]]:
    report = {}
    for index, host in enumerate(_hosts_in_state(), start=1):
        pid = lab_host.init_pid(host)
        alive = bool(pid) and os.path.exists("/proc/%d" % pid)
        try:
            ssh_ready(index, timeout=0) if alive else None
            ssh = alive
        except (TimeoutError, OSError):
            ssh = False
        report[host] = {"address": topo.host_ip(index), "init_pid": pid if alive else None,
                        "boot_id": boot_id(host) if alive else None, "ssh": ssh}
    return report


def healthy(count: int) -> bool:
    hosts = _hosts_in_state()
    return len(hosts) == count and all(h["ssh"] for h in status().values())


def _check_checkout_visible() -> None:
    """Lab hosts run this checkout's Python and collection; they get fresh /run, /tmp and /dev/shm."""
    for private in ("/run", "/tmp", "/dev/shm"):
        if topo.ROOT == private or topo.ROOT.startswith(private + "/"):
            raise RuntimeError("the checkout %s is under %s, which every lab host replaces with its own tmpfs: "
                               "clone it elsewhere (e.g. /srv or /var/tmp)" % (topo.ROOT, private))


def up(count: int = 3, kind: str = NAMESPACE, kernel_series: Sequence[str] = ()) -> str:
    """Build the lab (or leave a healthy one alone); returns the inventory path.

    With kind=QEMU the hosts are QEMU guests; guest i first boots Debian's kernel of series
    kernel_series[i] (6.1 or 6.12), installed into it from the lab repository."""
    _check_checkout_visible()
    wanted = {"hosts": [topo.host_name(i) for i in range(1, count + 1)], "flavour": kind,
              "kernels": list(kernel_series)}
    if healthy(count) and {k: _state().get(k) for k in ("flavour", "kernels")} == \
            {"flavour": kind, "kernels": list(kernel_series)}:
        return write_inventory(_hosts_in_state(), kind)
    down()
    hosts = wanted["hosts"]
    for host in hosts:
        for sub in ("upper", "work", "root"):
            os.makedirs(os.path.join(topo.host_dir(host), sub), exist_ok=True)
    os.makedirs(topo.shared_source(), exist_ok=True)
    _write_ssh_material(hosts)
    with open(STATE, "w") as handle:
        json.dump(wanted, handle)
    wiring.build_switch()
    wiring.attach(topo.CONTROLLER_NETNS, topo.CONTROLLER_IP, bridged=False)
    wiring.attach(topo.CLIENT_NETNS, topo.CLIENT_IP, bridged=False)
    if kind == QEMU:
        _start_guests(hosts, kernel_series)
    else:
        aptrepo.publish(topo.repo_dir(), [])
        for index, host in enumerate(hosts, start=1):
            wiring.attach(topo.host_netns(host), topo.host_ip(index), bridged=True)
            lab_host.spawn_keeper(host)
    for index in range(1, count + 1):
        ssh_ready(index, GUEST_READY_TIMEOUT if kind == QEMU else READY_TIMEOUT)
    return write_inventory(hosts, kind)


def _start_guests(hosts: List[str], kernel_series: Sequence[str]) -> None:
    if len(kernel_series) != len(hosts):
        raise ValueError("a QEMU lab needs one kernel series per host, e.g. 6.1 6.12")
    available = guest.fetch_kernels()
    kernels = [available[series] for series in kernel_series]
    aptrepo.publish(topo.repo_dir(), guest.repository_packages(kernels))
    for host, kernel in zip(hosts, kernels):
        guest.install_kernel(host, kernel.version)
        wiring.attach_tap(host)
        lab_host.spawn_keeper(host, guest.keep)


def _kill_namespace_members(netns_path: str) -> None:
    """SIGKILL every process whose network namespace is `netns_path` (a host's init takes its PID namespace along)."""
    try:
        target = os.stat(netns_path).st_ino
    except OSError:
        return
    victims = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat("/proc/%s/ns/net" % entry).st_ino == target:
                    victims.append(int(entry))
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in victims:
        linux.wait_for_exit(pid, 10)


def _stop_keepers() -> None:
    hosts_dir = os.path.join(topo.LAB_ROOT, "hosts")
    for host in os.listdir(hosts_dir) if os.path.isdir(hosts_dir) else []:
        try:
            with open(os.path.join(topo.host_dir(host), "init.json")) as handle:
                keeper = json.load(handle)["keeper_pid"]
        except (OSError, ValueError, KeyError):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(keeper, signal.SIGKILL)  # first, so that it does not boot the host again
        linux.wait_for_exit(keeper, 10)


def _stop_ssh_masters() -> None:
    """Ansible's SSH connection masters for the lab's hosts (they would outlive them)."""
    marker = ("ssh: %s/" % topo.control_path_dir()).encode()
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                if entry.isdigit() and handle.read().startswith(marker):
                    os.kill(int(entry), signal.SIGTERM)


def down() -> None:
    """Remove everything the lab made: processes, namespaces (with their links), files."""
    _stop_keepers()
    _stop_ssh_masters()
    for name in wiring.lab_namespaces():
        _kill_namespace_members(topo.netns_path(name))
    wiring.remove_all()
    lab_host.remove_cgroups()
    if os.path.isdir(topo.LAB_ROOT):
        linux.unmount_under(topo.LAB_ROOT)
    shutil.rmtree(topo.LAB_ROOT, ignore_errors=True)


def partition(host: str) -> None:
    """Cut `host` off the lab switch: from now on its packets are dropped, none refused."""
    wiring.set_port(topo.host_netns(host), up=False)


def heal(host: str) -> None:
    wiring.set_port(topo.host_netns(host), up=True)


def hold(host: str) -> None:
    """Make `host` stay down at its next reboot, as a machine that does not come back."""
    open(lab_host.hold_file(host), "w").close()


def release(host: str) -> None:
    """Let a held host boot again; returns once it answers on SSH."""
    index = _hosts_in_state().index(host) + 1
    if os.path.exists(lab_host.hold_file(host)):
        os.unlink(lab_host.hold_file(host))
    ssh_ready(index)


def reboot(host: str, wait: bool = True) -> str:
    """Reboot a lab host as its own `reboot` would; returns the new boot id."""
    before = boot_id(host)
    if flavour() == QEMU:  # the guest's own PID 1 is out of the machine's reach: ask it over SSH
        ssh(host, topo.REBOOT_COMMAND, check=False)  # the connection dies with everything else on it
    else:
        os.kill(lab_host.init_pid(host), signal.SIGUSR1)
    return wait_rebooted(host, before) if wait else ""


def wait_rebooted(host: str, before: str) -> str:
    """Wait until `host` has booted again (its boot id is no longer `before`) and answers on SSH."""
    timeout = GUEST_READY_TIMEOUT if flavour() == QEMU else READY_TIMEOUT
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while boot_id(host) in ("", before):
        if time.monotonic() > deadline:
            raise TimeoutError("%s did not come back" % host)
        pause.wait(0.05)
    ssh_ready(_hosts_in_state().index(host) + 1, timeout)
    return boot_id(host)
