"""The host bridge that the integration tests, the single-host demo and the checkpoint benchmark give their
pods (pyroute2, as the collection itself configures networks)."""

from __future__ import annotations

from pyroute2 import IPRoute


def host_bridge(name: str, gateway: str, up: bool, prefixlen: int = 24) -> None:
    """Remove bridge `name` if it exists (a crashed run's too); with up, make it again, with `gateway` on it."""
    with IPRoute() as ipr:
        for index in ipr.link_lookup(ifname=name):
            ipr.link("del", index=index)
        if up:
            ipr.link("add", ifname=name, kind="bridge")
            index = ipr.link_lookup(ifname=name)[0]
            ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
            ipr.link("set", index=index, state="up")
