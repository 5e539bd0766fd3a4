"""A host's room for pods: the kernel's MemAvailable, or less where the operator capped the pods' cgroup."""

from __future__ import annotations

import pytest

from ansible_collections.autopod.autopod.plugins.module_utils import capacity, cgroups


@pytest.fixture
def cgroup_root(tmp_path, monkeypatch):
    """A cgroup v2 tree with the pods' parent, `autopod`, in a temporary directory."""
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    (tmp_path / "autopod").mkdir()
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", str(tmp_path))
    monkeypatch.setattr(capacity, "_kernel_memory_available", lambda: 8 << 30)
    return tmp_path / "autopod"


def _parent(directory, limit: str, usage: int) -> None:
    (directory / "memory.max").write_text(limit + "\n")
    (directory / "memory.current").write_text("%d\n" % usage)


def test_a_capped_parent_cgroup_leaves_only_its_limit_less_what_the_pods_use(cgroup_root):
    _parent(cgroup_root, str(512 << 20), 400 << 20)
    assert cgroups.room() == 112 << 20
    assert capacity.memory_available() == 112 << 20


def test_a_parent_over_its_limit_has_no_room(cgroup_root):
    _parent(cgroup_root, str(256 << 20), 300 << 20)
    assert capacity.memory_available() == 0


def test_no_limit_or_no_parent_yet_means_the_kernels_figure(cgroup_root):
    _parent(cgroup_root, "max", 400 << 20)
    assert cgroups.room() is None
    assert capacity.memory_available() == 8 << 30
    for name in ("memory.max", "memory.current"):
        (cgroup_root / name).unlink()
    assert capacity.memory_available() == 8 << 30


def test_a_limit_above_the_kernels_figure_does_not_raise_it(cgroup_root):
    _parent(cgroup_root, str(64 << 30), 1 << 30)
    assert capacity.memory_available() == 8 << 30


def test_cgroup_v1_reads_the_memory_controllers_limit_and_usage(tmp_path, monkeypatch):
    parent = tmp_path / "memory" / "autopod"
    parent.mkdir(parents=True)
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", str(tmp_path))
    (parent / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    (parent / "memory.usage_in_bytes").write_text("%d\n" % (10 << 20))
    assert cgroups.room() is None
    (parent / "memory.limit_in_bytes").write_text("%d\n" % (100 << 20))
    assert cgroups.room() == 90 << 20
