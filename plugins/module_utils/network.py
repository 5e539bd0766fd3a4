# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A pod's network identity: its network namespace, veth, IP and MAC address (pyroute2).

The namespace is built here, outside the pod, and handed to CRIU as an external
namespace, so the identity can be released on one host and rebuilt on another
before the pod's processes are restored into it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import socket
import struct
import threading
import traceback
from typing import Any, Iterator, List, Optional

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.autopod.autopod.plugins.module_utils import linux
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.pod import NetworkSpec, PodSpec

NETNS_DIR = "/run/netns"
POD_IFNAME = "eth0"


class _Pyroute2:
    """The pyroute2 names this file uses, imported on first use.

    Importing pyroute2 takes about 0.1 s (its package imports every netlink family it has), a quarter of
    a module's start on the host: the modules that never touch a network (pod_info, patch_status,
    maintenance_lock, criu_info) should not pay it on every task."""

    def __getattr__(self, name: str) -> Any:
        self.load()
        return object.__getattribute__(self, name)

    def load(self) -> None:
        if "IPRoute" in self.__dict__:
            return
        try:
            from pyroute2 import IPRoute
            from pyroute2.netlink.exceptions import NetlinkError
            from pyroute2.nftables.main import NFTables
        except ImportError as exc:
            raise AutopodError(missing_required_lib("pyroute2"), exception=traceback.format_exc()) from exc
        self.__dict__.update(IPRoute=IPRoute, NetlinkError=NetlinkError, NFTables=NFTables)


_PYROUTE2 = _Pyroute2()


def require_pyroute2() -> None:
    """Fail with the missing_required_lib message, before anything is touched, if pyroute2 is missing."""
    _PYROUTE2.load()


def netns_name(pod: str) -> str:
    return "autopod-" + pod


def netns_path(pod: str) -> str:
    return os.path.join(NETNS_DIR, netns_name(pod))


def host_veth_name(pod: str) -> str:
    """Interface names are limited to 15 characters; pod names are not, so hash them."""
    return "apv" + hashlib.sha1(pod.encode()).hexdigest()[:10]


def host_veth_mac(pod: str) -> str:
    digest = hashlib.sha1(("host:" + pod).encode()).digest()
    return "fe:" + ":".join("%02x" % b for b in digest[:5])


def bridge_exists(bridge: str) -> bool:
    with _PYROUTE2.IPRoute() as ipr:
        links = ipr.link_lookup(ifname=bridge)
        if not links:
            return False
        info = ipr.get_links(links[0])[0].get_attr("IFLA_LINKINFO")
        return bool(info) and info.get_attr("IFLA_INFO_KIND") == "bridge"


def address_holder(ip: str) -> Optional[str]:
    """The host interface that already has `ip`, if any."""
    with _PYROUTE2.IPRoute() as ipr:
        for addr in ipr.get_addr(family=socket.AF_INET):
            if addr.get_attr("IFA_ADDRESS") == ip:
                index = addr["index"]
                return ipr.get_links(index)[0].get_attr("IFLA_IFNAME")
    return None


def identity_exists(pod: str) -> bool:
    return os.path.exists(netns_path(pod))


def build_identity(spec: PodSpec) -> None:
    """Create the pod's network namespace (loopback up) and, if it has a network, its veth, held.

    Held: the pod's end has its address and MAC and is up, but the host end, a port of the bridge, stays
    down, so nothing of the pod reaches the segment and nothing on the segment reaches the pod
    until attach(). A restore attaches only once CRIU has restored the pod's sockets: a packet that
    arrived earlier would be answered by this host's kernel, which has the address but not yet the
    sockets, with a reset (docs/design.md, "Holding a pod's network"). IPv6 is off on the pod's
    interface unless the pod asks for it, so no DAD, MLD or router solicitation leaves it early.
    Anything left from an earlier, interrupted run is removed first; on failure everything made
    here is removed again.
    """
    require_pyroute2()  # the missing-library message before anything below is removed or made
    release_identity(spec.name)
    _delete_host_veth(spec.name)
    try:
        create_netns(netns_path(spec.name))
        with netlink_in(netns_path(spec.name)) as pod_ipr:
            pod_ipr.link("set", index=pod_ipr.link_lookup(ifname="lo")[0], state="up")
            if spec.network:
                if not spec.network.ipv6:
                    with linux.inside_netns(netns_path(spec.name)):
                        _disable_ipv6("default")  # inherited by the pod's end of the veth, made next
                _build_veth(spec.name, spec.network, pod_ipr)
    except (_PYROUTE2.NetlinkError, OSError) as exc:
        release_identity(spec.name)
        _delete_host_veth(spec.name)
        raise AutopodError("could not build the network of pod %s: %s" % (spec.name, exc))


def _disable_ipv6(interface: str) -> None:
    """net.ipv6.conf.<interface>.disable_ipv6=1 in the calling thread's network namespace (a kernel
    without IPv6 has no such file, and nothing to disable)."""
    try:
        with open("/proc/sys/net/ipv6/conf/%s/disable_ipv6" % interface, "w") as knob:
            knob.write("1")
    except FileNotFoundError:
        pass


def _make_shared_mount_point(directory: str) -> None:
    """Make `directory` a shared mount point, as iproute2's `ip netns add` and Podman do before pinning.

    Either of them, finding it a plain directory, bind-mounts it over itself: namespace files pinned
    before that end up hidden underneath, and unlinking them gives EBUSY (docs/design.md, "`ip
    netns` and /run/netns"). Once it is a mount point, they leave it as it is. A directory that
    already holds pins is left alone: binding it over itself would leave a copy of each pin under
    the new mount, where it could not be removed either.
    """
    os.makedirs(directory, exist_ok=True)
    if any(os.path.ismount(os.path.join(directory, entry)) for entry in os.listdir(directory)):
        return
    try:
        linux.mount(None, directory, None, linux.MS_SHARED | linux.MS_REC)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: not a mount point yet
            raise
        linux.mount(directory, directory, None, linux.MS_BIND | linux.MS_REC)
        linux.mount(None, directory, None, linux.MS_SHARED | linux.MS_REC)


def create_netns(path: str) -> None:
    """A named network namespace, as `ip netns add` makes one: a new netns bind-mounted at `path`.

    unshare(CLONE_NEWNET) changes only the calling thread's namespace, so a short-lived
    thread does it and this thread stays where it is.
    """
    _make_shared_mount_point(os.path.dirname(path))
    with open(path, "x"):
        pass
    failure: List[BaseException] = []

    def _enter_and_pin() -> None:
        try:
            linux.unshare(linux.CLONE_NEWNET)
            linux.mount("/proc/thread-self/ns/net", path, None, linux.MS_BIND)
        except OSError as exc:
            failure.append(exc)

    worker = threading.Thread(target=_enter_and_pin)
    worker.start()
    worker.join()
    if failure:
        os.unlink(path)
        raise failure[0]


def _build_veth(pod: str, net: NetworkSpec, pod_ipr: Any) -> None:
    host_if = host_veth_name(pod)
    with _PYROUTE2.IPRoute() as ipr:
        if not ipr.link_lookup(ifname=net.bridge):
            raise AutopodError("bridge %s does not exist on this host" % net.bridge)
        # The host end gets a high, locally administered MAC (as libvirt gives its taps): a Linux bridge
        # without an assigned MAC takes its ports' lowest, and a pod joining must not change the host's.
        ipr.link("add", ifname=host_if, kind="veth", address=host_veth_mac(pod),
                 peer={"ifname": POD_IFNAME, "net_ns_fd": netns_name(pod)})
        _disable_ipv6(host_if)  # a bridge port needs no addresses of its own
        # A port of its bridge already, but down, which carries nothing: joining the bridge takes 5 ms, which
        # is then not part of a restored pod's freeze; attach() only brings the port up.
        settings = {"master": ipr.link_lookup(ifname=net.bridge)[0]}
        if net.mtu:
            settings["mtu"] = net.mtu
        ipr.link("set", index=ipr.link_lookup(ifname=host_if)[0], **settings)
    index = pod_ipr.link_lookup(ifname=POD_IFNAME)[0]
    settings = {"address": net.mac}
    if net.mtu:
        settings["mtu"] = net.mtu
    pod_ipr.link("set", index=index, **settings)
    pod_ipr.addr("add", index=index, address=net.ip, prefixlen=net.prefixlen)
    pod_ipr.link("set", index=index, state="up")
    if net.gateway:
        pod_ipr.route("add", dst="default", gateway=net.gateway)


def attach(spec: PodSpec) -> None:
    """Bring a pod's held veth up on its bridge: from now on the pod is on the segment (1-2 ms).

    Neighbours the pod tried to reach while it had no link are forgotten: an entry left incomplete
    would hold the pod's next packet until the kernel's next ARP retry, a second later."""
    if spec.network:
        with _PYROUTE2.IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=host_veth_name(spec.name))[0],
                     master=ipr.link_lookup(ifname=spec.network.bridge)[0], state="up")
        with netlink_in(netns_path(spec.name)) as pod_ipr:
            index = pod_ipr.link_lookup(ifname=POD_IFNAME)[0]
            for entry in pod_ipr.get_neighbours(ifindex=index):
                with contextlib.suppress(_PYROUTE2.NetlinkError):
                    pod_ipr.neigh("del", ifindex=index, dst=entry.get_attr("NDA_DST"))


def detach(spec: PodSpec) -> None:
    """Take a pod off its bridge (host end down): a copy that is about to be killed resets nobody."""
    if spec.network:
        with _PYROUTE2.IPRoute() as ipr:
            for index in ipr.link_lookup(ifname=host_veth_name(spec.name)):
                ipr.link("set", index=index, state="down", master=0)


def _delete_host_veth(pod: str) -> None:
    with _PYROUTE2.IPRoute() as ipr:
        for index in ipr.link_lookup(ifname=host_veth_name(pod)):
            try:
                ipr.link("del", index=index)
            except _PYROUTE2.NetlinkError as exc:
                if exc.code != errno.ENODEV:  # the kernel's own cleanup got there first
                    raise


def remove_netns(path: str) -> bool:
    """Unpin a named network namespace (`ip netns del`). True if there was one."""
    if not os.path.exists(path):
        return False
    with contextlib.suppress(OSError):
        linux.umount2(path, linux.MNT_DETACH)
    os.unlink(path)
    return True


def release_identity(pod: str) -> bool:
    """Remove the pod's network namespace. True if there was one.

    The kernel then destroys the namespace, and with it both ends of the pod's veth,
    in the background; deleting the veth synchronously would cost a network-wide RCU
    wait (10-20 ms here) on the path of every checkpoint. A lingering host end is
    removed by the next build_identity of the same pod.
    """
    return remove_netns(netns_path(pod))


@contextlib.contextmanager
def netlink_in(path: str) -> Iterator[Any]:
    """A pyroute2 IPRoute bound to the network namespace at `path` (cheaper than pyroute2's NetNS helper)."""
    with linux.inside_netns(path):
        ipr = _PYROUTE2.IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


NFPROTO_INET = 1


def criu_lock_tables(netns: str) -> List[str]:
    """The network-lock tables CRIU has in a pod's namespace (named CRIU-<run id>)."""
    with linux.inside_netns(netns):
        nft = _PYROUTE2.NFTables(nfgen_family=NFPROTO_INET)
    try:
        return [n for n in (t.get_attr("NFTA_TABLE_NAME") for t in nft.get_tables()) if n and n.startswith("CRIU-")]
    finally:
        nft.close()


def clear_criu_locks(netns: str) -> List[str]:
    """Remove network-lock tables CRIU left in a restored pod's namespace; returns their names.

    CRIU 4.2 locks the network with an nftables table named after a dump's run id and, after a
    restore from a post-copy dump, sometimes unlocks under another run id (its restore log then
    says "delete table inet CRIU-...: No such file or directory"); the pod runs but every packet
    to it is dropped. Called once CRIU has reported the pod restored.
    """
    with linux.inside_netns(netns):
        nft = _PYROUTE2.NFTables(nfgen_family=NFPROTO_INET)
    try:
        names = [t.get_attr("NFTA_TABLE_NAME") for t in nft.get_tables()]
        stale = [n for n in names if n and n.startswith("CRIU-")]
        for name in stale:
            nft.table("del", name=name)
        return stale
    finally:
        nft.close()


def _arp_frame(mac: str, ip: str, operation: int, target: Optional[str] = None) -> bytes:
    """A broadcast ARP frame from (mac, ip): gratuitous (about `ip` itself) unless it asks for `target`."""
    hw = bytes(int(part, 16) for part in mac.split(":"))
    proto = socket.inet_aton(ip)
    broadcast = b"\xff" * 6
    ethernet = broadcast + hw + struct.pack("!H", 0x0806)
    target_hw = broadcast if operation == 2 else b"\x00" * 6
    target_proto = socket.inet_aton(target) if target else proto
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, operation) + hw + proto + target_hw + target_proto
    return ethernet + arp


NUD_INCOMPLETE = 0x01


def _unresolved_neighbours(pod: str) -> List[str]:
    """The IPv4 neighbours the pod's kernel is still resolving (ARP asked, no answer yet)."""
    with netlink_in(netns_path(pod)) as pod_ipr:
        index = pod_ipr.link_lookup(ifname=POD_IFNAME)[0]
        return [entry.get_attr("NDA_DST") for entry in pod_ipr.get_neighbours(family=socket.AF_INET, ifindex=index)
                if entry["state"] & NUD_INCOMPLETE]


def announce(spec: PodSpec) -> int:
    """Send gratuitous ARP (a request and a reply) so switches and peers learn where the pod is now,
    then ask again for every neighbour the pod is still resolving; returns the frames sent.

    A neighbour the pod began to resolve in the milliseconds after attach(), before its link carried
    frames (the veth's carrier and the bridge port come up asynchronously), lost its first request, and
    the kernel asks again only a second later (retrans_time), holding the pod's packets to it meanwhile:
    clients waited 1.1 s on moves that froze the pod 150-190 ms (the lab switch saw the pod's first ARP
    request 992 ms after this announcement). The link carries frames now, so an answer comes at once and
    releases what the entry holds. Closing a packet socket waits for an RCU grace period (10-20 ms here),
    so the pod's supervisor does this after it has reported the restored pod to the module.
    """
    if not spec.network:
        return 0
    try:
        unresolved = _unresolved_neighbours(spec.name)
    except (OSError, _PYROUTE2.NetlinkError):  # only a speed-up: the kernel asks again itself a second later
        unresolved = []
    frames = [_arp_frame(spec.network.mac, spec.network.ip, operation) for operation in (1, 2)]
    frames += [_arp_frame(spec.network.mac, spec.network.ip, 1, target) for target in unresolved]
    with linux.inside_netns(netns_path(spec.name)):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    with sock:
        sock.bind((POD_IFNAME, 0))
        for frame in frames:
            sock.send(frame)
    return len(frames)
