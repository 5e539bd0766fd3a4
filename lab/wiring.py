"""The lab's network: a switch namespace with a bridge, and a veth from it into every other namespace."""

from __future__ import annotations

import hashlib
import os
from typing import List

from ansible_collections.autopod.autopod.plugins.module_utils import linux, network
from lab import topology as topo


def _switch_port(peer_netns: str) -> str:
    return "sw" + hashlib.sha1(peer_netns.encode()).hexdigest()[:10]


def build_switch() -> None:
    network.create_netns(topo.netns_path(topo.SWITCH_NETNS))
    with network.netlink_in(topo.netns_path(topo.SWITCH_NETNS)) as sw:
        sw.link("set", index=sw.link_lookup(ifname="lo")[0], state="up")
        sw.link("add", ifname=topo.SWITCH_BRIDGE, kind="bridge")
        sw.link("set", index=sw.link_lookup(ifname=topo.SWITCH_BRIDGE)[0], state="up")


def attach(netns_name: str, address: str, bridged: bool) -> None:
    """Create `netns_name`, plug its eth0 into the switch and give it `address` (see configure_nic)."""
    path = topo.netns_path(netns_name)
    network.create_netns(path)
    port = _switch_port(netns_name)
    with network.netlink_in(topo.netns_path(topo.SWITCH_NETNS)) as sw:
        sw.link("add", ifname=port, kind="veth", peer={"ifname": "eth0", "net_ns_fd": path})
        sw.link("set", index=sw.link_lookup(ifname=port)[0], master=sw.link_lookup(ifname=topo.SWITCH_BRIDGE)[0],
                state="up")
    with network.netlink_in(path) as ns:
        configure_nic(ns, address, bridged)


def configure_nic(ns, address: str, bridged: bool) -> None:
    """Bring up lo and eth0 of the namespace `ns` (a pyroute2 IPRoute in it) and give it `address`.

    With `bridged`, eth0 is enslaved to a bridge br0 that carries the address, as on a server whose
    NIC is bridged for its guests: pods attached to br0 are then on the lab's segment. A lab guest's
    init calls this for its own network too."""
    ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
    eth0 = ns.link_lookup(ifname="eth0")[0]
    carrier = eth0
    if bridged:
        ns.link("add", ifname=topo.HOST_BRIDGE, kind="bridge")
        carrier = ns.link_lookup(ifname=topo.HOST_BRIDGE)[0]
        # A bridge without a MAC of its own takes its ports' lowest: each pod veth that comes and goes
        # would change the host's MAC under its neighbours' ARP caches. Pin it to the NIC's.
        mac = ns.get_links(eth0)[0].get_attr("IFLA_ADDRESS")
        ns.link("set", index=carrier, address=mac)
        ns.link("set", index=eth0, master=carrier)
    ns.link("set", index=eth0, state="up")
    ns.addr("add", index=carrier, address=address, prefixlen=topo.PREFIXLEN)
    ns.link("set", index=carrier, state="up")


def tap_name(host: str) -> str:
    return "tap-" + host


def attach_tap(host: str) -> None:
    """A persistent tap device on the switch for a QEMU guest (QEMU runs in the switch namespace and
    opens it by name); the guest brings up its own side."""
    switch = topo.netns_path(topo.SWITCH_NETNS)
    with network.netlink_in(switch) as sw:
        with linux.inside_netns(switch):  # tuntap devices are made with ioctls, in the calling thread's namespace
            sw.link("add", ifname=tap_name(host), kind="tuntap", mode="tap")
        sw.link("set", index=sw.link_lookup(ifname=tap_name(host))[0],
                master=sw.link_lookup(ifname=topo.SWITCH_BRIDGE)[0], state="up")


def set_port(netns_name: str, up: bool) -> None:
    """Bring a namespace's switch port down (its packets are dropped, nothing is refused: a partition)
    or up again."""
    with network.netlink_in(topo.netns_path(topo.SWITCH_NETNS)) as sw:
        sw.link("set", index=sw.link_lookup(ifname=_switch_port(netns_name))[0], state="up" if up else "down")


def detach(netns_name: str) -> None:
    """Remove a namespace and its switch port (the port goes with the namespace's veth)."""
    network.remove_netns(topo.netns_path(netns_name))


def lab_namespaces() -> List[str]:
    if not os.path.isdir(topo.NETNS_DIR):
        return []
    return sorted(n for n in os.listdir(topo.NETNS_DIR) if n.startswith("aplab-"))


def remove_all() -> None:
    """Every namespace the lab made, the switch last."""
    for name in lab_namespaces():
        if name != topo.SWITCH_NETNS:
            detach(name)
    detach(topo.SWITCH_NETNS)
