"""The pod model: names, definitions and their validation."""

from __future__ import annotations

import pytest

from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.pod import (
    NAME_MAX, PodSpec, default_mac, validate_name)


@pytest.mark.parametrize("name", ["", "x" * (NAME_MAX + 1), "../x", "a b", "Web", "web;rm -rf /", "$(id)",
                                  "a`b`", "-web", "web-", "web/1", "web.1", "we|b", None, 7])
def test_bad_names_are_refused(name):
    with pytest.raises(AutopodError) as err:
        validate_name(name)
    assert "invalid pod name" in err.value.msg


@pytest.mark.parametrize("name", ["a", "web", "web-1", "1x", "x" * NAME_MAX])
def test_good_names_pass(name):
    assert validate_name(name) == name


def params(tmp_path, **overrides):
    base = {"name": "web", "rootfs": str(tmp_path), "command": ["/bin/sh"]}
    base.update(overrides)
    return base


def test_minimal_spec_gets_defaults(tmp_path):
    spec = PodSpec.from_params(params(tmp_path))
    assert spec.hostname == "web"
    assert spec.workdir == "/"
    assert spec.network is None and spec.mounts == [] and spec.memory_max is None


def test_network_defaults_and_normalises(tmp_path):
    spec = PodSpec.from_params(params(tmp_path, network={"address": "10.0.0.5/24", "bridge": "br0",
                                                         "gateway": "10.0.0.1"}))
    assert spec.network.ip == "10.0.0.5" and spec.network.prefixlen == 24
    assert spec.network.mac == default_mac("web")
    assert int(spec.network.mac[:2], 16) & 0b11 == 0b10  # locally administered, unicast


def test_default_mac_is_stable_and_distinct():
    assert default_mac("web") == default_mac("web")
    assert default_mac("web") != default_mac("db")


@pytest.mark.parametrize("network, message", [
    ({"address": "10.0.0.5", "bridge": "br0"}, "prefix length"),
    ({"address": "10.0.0.300/24", "bridge": "br0"}, "CIDR"),
    ({"address": "10.0.0.0/24", "bridge": "br0"}, "network or broadcast"),
    ({"address": "10.0.0.5/24", "bridge": "a bridge"}, "network.bridge"),
    ({"address": "10.0.0.5/24", "bridge": "br0", "gateway": "10.1.0.1"}, "gateway"),
    ({"address": "10.0.0.5/24", "bridge": "br0", "mac": "01:00:00:00:00:01"}, "unicast"),
    ({"address": "10.0.0.5/24", "bridge": "br0", "mtu": 20}, "mtu"),
])
def test_bad_networks_are_refused(tmp_path, network, message):
    with pytest.raises(AutopodError) as err:
        PodSpec.from_params(params(tmp_path, network=network))
    assert message in err.value.msg


def test_missing_rootfs_is_refused(tmp_path):
    with pytest.raises(AutopodError) as err:
        PodSpec.from_params(params(tmp_path, rootfs=str(tmp_path / "nope")))
    assert "does not exist" in err.value.msg


@pytest.mark.parametrize("rootfs", ["/", "relative/dir", "/srv/../etc"])
def test_unsafe_rootfs_is_refused(rootfs):
    with pytest.raises(AutopodError):
        PodSpec.from_params({"name": "web", "rootfs": rootfs, "command": ["/bin/sh"]})


@pytest.mark.parametrize("command", [[], "sh -c true", [""], ["/bin/sh", "a\0b"]])
def test_bad_commands_are_refused(tmp_path, command):
    with pytest.raises(AutopodError):
        PodSpec.from_params(params(tmp_path, command=command))


@pytest.mark.parametrize("target", ["/", "/proc", "/dev/shm", "/tmp", "/.autopod/x", "rel"])
def test_reserved_mount_targets_are_refused(tmp_path, target):
    with pytest.raises(AutopodError):
        PodSpec.from_params(params(tmp_path, mounts=[{"source": str(tmp_path), "target": target}]))


@pytest.mark.parametrize("source", ["/", "/etc", "/proc/1", "/sys", "/dev"])
def test_the_hosts_own_directories_are_mounted_only_when_allowed(tmp_path, source):
    mounts = [{"source": source, "target": "/host"}]
    with pytest.raises(AutopodError, match="allow_host_paths: true"):
        PodSpec.from_params(params(tmp_path, mounts=mounts))
    allowed = PodSpec.from_params(params(tmp_path, mounts=mounts, allow_host_paths=True))
    assert allowed.mounts[0].source == source and allowed.allow_host_paths
    assert PodSpec.from_definition(allowed.to_dict()) == allowed  # a receiver accepts what the source allowed


def test_hardening_flags_must_be_booleans(tmp_path):
    assert PodSpec.from_params(params(tmp_path, no_new_privs=True)).no_new_privs
    with pytest.raises(AutopodError, match="no_new_privs must be true or false"):
        PodSpec.from_params(params(tmp_path, no_new_privs="yes"))


def test_duplicate_mount_targets_are_refused(tmp_path):
    mounts = [{"source": str(tmp_path), "target": "/data"}, {"source": str(tmp_path), "target": "/data/"}]
    with pytest.raises(AutopodError) as err:
        PodSpec.from_params(params(tmp_path, mounts=mounts))
    assert "same target" in err.value.msg


@pytest.mark.parametrize("value, expected", [("256M", 256 << 20), ("1G", 1 << 30), (8 << 20, 8 << 20)])
def test_memory_sizes(tmp_path, value, expected):
    assert PodSpec.from_params(params(tmp_path, memory_max=value)).memory_max == expected


@pytest.mark.parametrize("value", ["1K", "lots", 1024])
def test_bad_memory_sizes_are_refused(tmp_path, value):
    with pytest.raises(AutopodError):
        PodSpec.from_params(params(tmp_path, memory_max=value))


def test_spec_round_trips(tmp_path):
    spec = PodSpec.from_params(params(tmp_path, env={"A": "1"}, network={"address": "10.0.0.5/24", "bridge": "br0"},
                                      mounts=[{"source": str(tmp_path), "target": "/data", "readonly": True}]))
    assert PodSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("env", [{"A=B": "1"}, {"": "x"}, {"A": "x\0y"}])
def test_bad_environment_is_refused(tmp_path, env):
    with pytest.raises(AutopodError):
        PodSpec.from_params(params(tmp_path, env=env))
