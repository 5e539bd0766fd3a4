"""The second flavour of lab host: a QEMU guest booting a real Debian kernel.

The guest's root is the same overlay a namespace host gets (the machine's / with a per-host upper
directory), mounted by the guest's keeper in a mount namespace of its own and shared with the guest
over virtio-9p; so the guest runs the machine's CRIU, Python and this checkout, and what it writes
(its package database, /boot, /lib/modules, /var/lib/autopod) is its own and survives its reboots.
The keeper plays the boot loader: at every boot it starts the newest kernel in the guest's /boot,
with an initramfs the lab builds for that kernel (lab/initramfs.py). QEMU runs without acceleration
(nested KVM does not boot guests here), with the same CPU model for every guest so that
`criu cpuinfo check` passes between them, in the lab switch's namespace on a tap device.

Inside, PID 1 is `guest_init` (the same init as a namespace host's, lab/host.py), which mounts the
guest's own filesystems and configures its network with pyroute2 before starting sshd. A reboot
(`kill -USR1 1`, as on namespace hosts) ends in the reboot system call; QEMU runs with -no-reboot,
so it exits and the keeper boots the guest again, on whatever kernel is newest by then.
"""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
import traceback
from typing import Dict, List, Sequence

from ansible_collections.autopod.autopod.plugins.module_utils import linux, network
from lab import aptrepo, initramfs, kernels
from lab import host as lab_host
from lab import topology as topo
from lab import wiring

QEMU = "qemu-system-x86_64"
CPU_MODEL = "max"  # TCG's model: the same for every guest, whatever the machine's CPU
MEMORY_MIB = 2048
BOOT_PACKAGE = aptrepo.Package("autopod-lab-boot", "1.0", "autopod-lab", provides="linux-initramfs-tool")
_RB_AUTOBOOT = 0x01234567
WORK_DIR = "/var/lib/autopod/work"
_GUEST_INIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guest_init.py")


def _release_key(release: str) -> List[int]:
    return [int(number) for number in re.findall(r"\d+", release)]


def newest_kernel(root: str) -> str:
    """The release of the newest kernel image in the guest's /boot, as a boot loader's default entry."""
    boot = os.path.join(root, "boot")
    releases = [name[len("vmlinuz-"):] for name in os.listdir(boot) if name.startswith("vmlinuz-")] \
        if os.path.isdir(boot) else []
    if not releases:
        raise RuntimeError("no kernel in %s" % boot)
    return max(releases, key=_release_key)


def _initrd(host: str, root: str, release: str) -> str:
    path = os.path.join(topo.host_dir(host), "initrd-%s.gz" % release)
    if not os.path.exists(path):
        initramfs.build(os.path.join(root, "lib", "modules", release), path)
    return path


def guest_mac(index: int) -> str:
    return "52:54:00:dc:00:%02x" % index


def qemu_argv(host: str, root: str, release: str) -> List[str]:
    index = topo.host_index(host)
    command_line = ["console=ttyS0", "panic=-1", "quiet", "autopod_python=" + topo.python(),
                    "autopod_init=" + _GUEST_INIT, "autopod_host=" + host]
    return [QEMU, "-name", host, "-accel", "tcg", "-cpu", CPU_MODEL, "-smp", "1", "-m", str(MEMORY_MIB),
            "-nographic", "-no-reboot", "-monitor", "none",
            "-kernel", os.path.join(root, "boot", "vmlinuz-" + release), "-initrd", _initrd(host, root, release),
            "-append", " ".join(command_line),
            "-virtfs", "local,path=%s,mount_tag=root,security_model=passthrough,multidevs=remap" % root,
            "-virtfs", "local,path=%s,mount_tag=shared,security_model=passthrough" % topo.shared_source(),
            "-netdev", "tap,id=net0,ifname=%s,script=no,downscript=no" % wiring.tap_name(host),
            "-device", "virtio-net-pci,netdev=net0,mac=%s" % guest_mac(index)]


def _console(host: str) -> str:
    return os.path.join(topo.host_dir(host), "console.log")


def keep(host: str) -> None:
    """The guest's keeper: its root overlay in a private mount namespace, QEMU in the switch's network."""
    linux.unshare(linux.CLONE_NEWNS)
    root = lab_host.mount_overlay(host)
    switch = os.open(topo.netns_path(topo.SWITCH_NETNS), os.O_RDONLY)
    linux.setns(switch, linux.CLONE_NEWNET)
    os.close(switch)

    def boot(_host: str) -> int:
        release = newest_kernel(root)
        with open(_console(host), "ab") as console:
            console.write(b"\n=== autopod lab: booting %s on %s\n" % (host.encode(), release.encode()))
            console.flush()
            return subprocess.Popen(qemu_argv(host, root, release), stdin=subprocess.DEVNULL, stdout=console,
                                    stderr=console, close_fds=True).pid
    # QEMU exits 0 when the guest reboots (-no-reboot); anything else is a failure to run it.
    lab_host.keep(host, boot, rebooted=lambda code: code == 0)


def install_kernel(host: str, version: str) -> None:
    """Install linux-image-amd64=`version` (and the image it depends on) into the guest's root from
    the lab repository, before its first boot, as an installer would: apt in a chroot."""
    child = os.fork()
    if child == 0:
        code = 1
        try:
            linux.unshare(linux.CLONE_NEWNS)
            root = lab_host.mount_overlay(host)
            for path in ("/proc", "/sys", "/dev"):
                linux.mount(path, os.path.join(root, path.lstrip("/")), None, linux.MS_BIND | linux.MS_REC)
            lab_host.bind_shared(root)
            os.chroot(root)
            os.chdir("/")
            aptrepo.configure_host_apt(topo.SHARED_REPO)
            environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            subprocess.run(["apt-get", "update", "-q"], check=True, env=environment, stdout=subprocess.DEVNULL)
            subprocess.run(["apt-get", "install", "-y", "-q", "linux-image-amd64=" + version, BOOT_PACKAGE.name],
                           check=True, env=environment, stdout=subprocess.DEVNULL)
            code = 0
        except Exception:  # the child must not return into the caller's code: report and exit
            traceback.print_exc()
        finally:
            os._exit(code)
    _pid, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("installing kernel %s into %s failed" % (version, host))


def _mount_guest_filesystems() -> None:
    flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    linux.mount("proc", "/proc", "proc", flags)
    linux.mount("sysfs", "/sys", "sysfs", flags)
    linux.mount("cgroup2", "/sys/fs/cgroup", "cgroup2", flags)
    os.makedirs("/dev/pts", exist_ok=True)
    linux.mount("devpts", "/dev/pts", "devpts", linux.MS_NOSUID | linux.MS_NOEXEC, "ptmxmode=0666,mode=0620")
    lab_host.mount_tmpfs_dirs("/")
    os.makedirs(topo.SHARED_DIR, exist_ok=True)
    linux.mount("shared", topo.SHARED_DIR, "9p", 0, "trans=virtio,version=9p2000.L,msize=512000,cache=mmap")
    # CRIU's work directories (under the default state_dir) hold the unix socket through which
    # `criu restore --lazy-pages` reaches `criu lazy-pages`, and 9p cannot hold a unix socket (bind()
    # fails with ENXIO): give them a local filesystem, as any real host's /var/lib is.
    os.makedirs(WORK_DIR, exist_ok=True)
    linux.mount("tmpfs", WORK_DIR, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=0700")


def _boot_inside(host: str) -> None:
    _mount_guest_filesystems()
    # what systemd-sysctl does at a machine's boot: the criu role's fs.pipe-max-size among others
    subprocess.run(["sysctl", "-q", "--system"], check=False, stdout=subprocess.DEVNULL)
    with network.netlink_in("/proc/self/ns/net") as ns:
        wiring.configure_nic(ns, topo.host_ip(topo.host_index(host)), bridged=True)


def _reboot(_code: int) -> None:
    os.sync()
    ctypes.CDLL(None, use_errno=True).reboot(_RB_AUTOBOOT)


def guest_init(host: str) -> None:
    """PID 1 inside the guest."""
    def log(message: str) -> None:
        sys.stderr.write("autopod lab init: %s\n" % message)
    lab_host.run_init(host, lambda: _boot_inside(host), _reboot, log)


def fetch_kernels() -> Dict[str, kernels.Kernel]:
    """Debian's kernels by series, downloaded once (lab/kernels.py)."""
    return kernels.fetch()


def repository_packages(installed: Sequence[kernels.Kernel], suite: str = "autopod-lab") -> List[aptrepo.Package]:
    """What the lab repository must hold for guests to have `installed` kernels: Debian's image and
    metapackage packages, what their scripts need (kmod, linux-base), and the lab's boot package
    (the lab builds initramfs images itself, so it provides linux-initramfs-tool)."""
    packages = [aptrepo.Package.from_deb(path, "autopod-lab") for path in kernels.support_debs()]
    packages += [aptrepo.Package.from_deb(path, suite) for kernel in installed for path in kernel.debs]
    return packages + [BOOT_PACKAGE]
