# -*- coding: utf-8 -*-
# Copyright: AutoPod contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pod model: what a pod is made of, and the checks its definition must pass.

Everything here is pure: it validates and converts, and touches nothing on the
host except reading whether paths exist.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from ansible.module_utils.common.text.formatters import human_to_bytes

from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError

NAME_MAX = 32
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?$")
_ACCOUNT_RE = re.compile(r"^([a-z_][a-z0-9_.-]{0,31}|[0-9]{1,10})$")
# Mount points the pod gets from AutoPod itself; a host bind mount may not hide them.
RESERVED_TARGETS = ("/proc", "/dev", "/tmp", "/.autopod")
# Host directories a pod may bind-mount only with allow_host_paths: its root would be the host's.
HOST_PATHS = ("/proc", "/sys", "/dev", "/etc")
MEMORY_MIN = 4 * 1024 * 1024


def validate_name(name: Any) -> str:
    """Pod names become directory, namespace and cgroup names: keep them boring."""
    if not isinstance(name, str) or not name:
        raise AutopodError("invalid pod name: it must not be empty")
    if len(name) > NAME_MAX:
        raise AutopodError("invalid pod name '%s': at most %d characters are allowed" % (name, NAME_MAX))
    if not _NAME_RE.match(name):
        raise AutopodError(
            "invalid pod name %r: use lower-case letters, digits and '-', starting and ending "
            "with a letter or digit" % name)
    return name


def _absolute_clean(path: Any, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise AutopodError("%s must be an absolute path, got %r" % (what, path))
    if "\0" in path or ".." in path.split("/"):
        raise AutopodError("%s must not contain '..' or NUL characters: %r" % (what, path))
    return os.path.normpath(path)


@dataclass
class NetworkSpec:
    address: str
    bridge: str
    gateway: Optional[str] = None
    mac: Optional[str] = None
    mtu: Optional[int] = None
    ipv6: bool = False

    @property
    def ip(self) -> str:
        return str(ipaddress.ip_interface(self.address).ip)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_interface(self.address).network.prefixlen


@dataclass
class MountSpec:
    source: str
    target: str
    readonly: bool = False


@dataclass
class PodSpec:
    """What the user asked for. Runtime facts (PIDs, images) live in the manifest."""

    name: str
    rootfs: str
    command: List[str]
    env: Dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    hostname: str = ""
    network: Optional[NetworkSpec] = None
    mounts: List[MountSpec] = field(default_factory=list)
    memory_max: Optional[int] = None
    user: Optional[str] = None
    group: Optional[str] = None
    no_new_privs: bool = False
    allow_host_paths: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "PodSpec":
        data = dict(data)
        network = data.pop("network", None)
        mounts = data.pop("mounts", None) or []
        return cls(network=NetworkSpec(**network) if network else None,
                   mounts=[MountSpec(**m) for m in mounts], **data)

    @classmethod
    def from_params(cls, params: Dict[str, Any], check_paths: bool = True) -> "PodSpec":
        """Build and validate a spec from module parameters; raise AutopodError on bad input."""
        name = validate_name(params.get("name"))
        rootfs = _validate_rootfs(params.get("rootfs"), check_paths)
        spec = cls(
            name=name,
            rootfs=rootfs,
            command=_validate_command(params.get("command")),
            env=_validate_env(params.get("env") or {}),
            workdir=_absolute_clean(params.get("workdir") or "/", "workdir"),
            hostname=_validate_hostname(params.get("hostname") or name),
            network=_validate_network(name, params.get("network")),
            mounts=[_validate_mount(m, check_paths, _flag(params, "allow_host_paths"))
                    for m in params.get("mounts") or []],
            memory_max=_validate_memory(params.get("memory_max")),
            user=_validate_account(params.get("user"), "user"),
            group=_validate_account(params.get("group"), "group"),
            no_new_privs=_flag(params, "no_new_privs"),
            allow_host_paths=_flag(params, "allow_host_paths"),
        )
        targets = [m.target for m in spec.mounts]
        if len(set(targets)) != len(targets):
            raise AutopodError("two mounts have the same target: %s" % ", ".join(sorted(targets)))
        return spec

    @classmethod
    def from_definition(cls, definition: Any) -> "PodSpec":
        """A definition received from elsewhere (pod_receive), validated exactly as pod_create validates its
        parameters; paths are not checked here, since the receiving host checks them on its own terms."""
        if not isinstance(definition, dict):
            raise AutopodError("definition must be a dictionary, as pod_info returns it")
        unknown = sorted(set(definition) - set(cls.__dataclass_fields__))
        if unknown:
            raise AutopodError("definition has keys a pod does not have: %s" % ", ".join(unknown))
        network = definition.get("network")
        if network is not None and not isinstance(network, dict):
            raise AutopodError("definition.network must be a dictionary")
        if network:
            unknown = sorted(set(network) - set(NetworkSpec.__dataclass_fields__))
            if unknown:
                raise AutopodError("definition.network has unknown keys: %s" % ", ".join(unknown))
        mounts = definition.get("mounts") or []
        if not isinstance(mounts, list) or not all(isinstance(m, dict) for m in mounts):
            raise AutopodError("definition.mounts must be a list of dictionaries")
        return cls.from_params(definition, check_paths=False)


def _validate_rootfs(rootfs: Any, check_paths: bool) -> str:
    path = _absolute_clean(rootfs, "rootfs")
    if path == "/":
        raise AutopodError("rootfs must be a directory of its own, not the host's /")
    if check_paths and not os.path.isdir(path):
        raise AutopodError("rootfs %s does not exist or is not a directory" % path)
    return path


def _validate_command(command: Any) -> List[str]:
    if not isinstance(command, list) or not command:
        raise AutopodError("command must be a non-empty list (the pod's first process and its arguments)")
    for arg in command:
        if not isinstance(arg, str) or "\0" in arg:
            raise AutopodError("command arguments must be strings without NUL characters: %r" % (arg,))
    if not command[0]:
        raise AutopodError("command[0] (the program to run) must not be empty")
    return list(command)


def _validate_env(env: Any) -> Dict[str, str]:
    if not isinstance(env, dict):
        raise AutopodError("env must be a dictionary of variable names to values")
    clean = {}
    for key, value in env.items():
        key, value = str(key), str(value)
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise AutopodError("invalid environment variable name or value: %r" % key)
        clean[key] = value
    return clean


def _validate_hostname(hostname: str) -> str:
    if not _HOSTNAME_RE.match(hostname):
        raise AutopodError("invalid hostname %r" % hostname)
    return hostname


def default_mac(name: str) -> str:
    """A stable, locally administered unicast MAC derived from the pod name.

    The MAC must be the same on every host the pod visits, so it is derived,
    not random, and recorded in the manifest.
    """
    digest = hashlib.sha256(name.encode()).digest()
    return "02:" + ":".join("%02x" % b for b in digest[:5])


def _validate_network(name: str, network: Optional[Dict[str, Any]]) -> Optional[NetworkSpec]:
    if not network:
        return None
    address = network.get("address")
    try:
        iface = ipaddress.IPv4Interface(address)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError):
        raise AutopodError("network.address must be an IPv4 address in CIDR form (10.0.0.5/24), got %r" % address)
    if "/" not in str(address) or iface.network.prefixlen >= 31:
        raise AutopodError("network.address %r needs a prefix length between /1 and /30" % address)
    if iface.ip in (iface.network.network_address, iface.network.broadcast_address):
        raise AutopodError("network.address %s is the network or broadcast address of its subnet" % address)
    bridge = network.get("bridge")
    if not isinstance(bridge, str) or not _IFNAME_RE.match(bridge):
        raise AutopodError("network.bridge must name an existing host bridge, got %r" % bridge)
    gateway = network.get("gateway")
    if gateway:
        try:
            gw = ipaddress.IPv4Address(gateway)
        except ValueError:
            raise AutopodError("network.gateway must be an IPv4 address, got %r" % gateway)
        if gw not in iface.network or gw == iface.ip:
            raise AutopodError("network.gateway %s is not another address in %s" % (gateway, iface.network))
    mac = (network.get("mac") or default_mac(name)).lower()
    if not _MAC_RE.match(mac) or int(mac[:2], 16) & 1:
        raise AutopodError("network.mac must be a unicast MAC address like 02:00:00:00:00:01, got %r" % mac)
    mtu = network.get("mtu")
    if mtu is not None and not 68 <= int(mtu) <= 65535:
        raise AutopodError("network.mtu must be between 68 and 65535, got %r" % mtu)
    ipv6 = network.get("ipv6", False)
    if not isinstance(ipv6, bool):
        raise AutopodError("network.ipv6 must be true or false, got %r" % (ipv6,))
    return NetworkSpec(address=str(iface), bridge=bridge, gateway=gateway or None, mac=mac,
                       mtu=int(mtu) if mtu is not None else None, ipv6=ipv6)


def _flag(params: Dict[str, Any], key: str) -> bool:
    value = params.get(key) or False
    if not isinstance(value, bool):
        raise AutopodError("%s must be true or false, got %r" % (key, value))
    return value


def _validate_mount(mount: Dict[str, Any], check_paths: bool, allow_host_paths: bool) -> MountSpec:
    source = _absolute_clean(mount.get("source"), "mounts.source")
    top = "/" + source.split("/")[1]
    if not allow_host_paths and (source == "/" or top in HOST_PATHS):
        raise AutopodError("mounts.source %s is in the host's %s: the pod's processes run as root and would own it; "
                           "set allow_host_paths: true if that is meant" % (source, top))
    target = _absolute_clean(mount.get("target"), "mounts.target")
    if target == "/" or any(target == r or target.startswith(r + "/") for r in RESERVED_TARGETS):
        raise AutopodError("mounts.target %s is reserved for the pod's own /, %s" % (target, ", ".join(RESERVED_TARGETS)))
    if check_paths and not os.path.exists(source):
        raise AutopodError("mounts.source %s does not exist on this host" % source)
    return MountSpec(source=source, target=target, readonly=bool(mount.get("readonly")))


def _validate_account(value: Any, what: str) -> Optional[str]:
    """A user or group of the pod: a name from the pod's own /etc/passwd or /etc/group, or a number."""
    if value is None or value == "":
        return None
    value = str(value)
    if not _ACCOUNT_RE.match(value):
        raise AutopodError("%s must be a name (as in the pod's /etc/passwd or /etc/group) or a number, got %r"
                           % (what, value))
    return value


def _validate_memory(value: Any) -> Optional[int]:
    """Bytes, or a size with a unit such as 256M or 1G."""
    if value is None:
        return None
    try:
        memory_max = human_to_bytes(value) if isinstance(value, str) else int(value)
    except ValueError as exc:
        raise AutopodError("memory_max %r is not a size: %s" % (value, exc))
    if memory_max < MEMORY_MIN:
        raise AutopodError("memory_max must be at least %d bytes (4 MiB), got %d" % (MEMORY_MIN, memory_max))
    return int(memory_max)
