"""The CRIU driver's pure parts: versions, kernel rules, command lines, statistics images."""

from __future__ import annotations

import os

import pytest

from ansible_collections.autopod.autopod.plugins.module_utils import criu, criu_images
from ansible_collections.autopod.autopod.plugins.module_utils.criu_images import ImageFormatError, parse_stats
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError
from ansible_collections.autopod.autopod.plugins.module_utils.pod import MountSpec

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "criu")


def fixture(name: str, mode: str = "r"):
    with open(os.path.join(FIXTURES, name), mode) as handle:
        return handle.read()


def test_versions_from_real_output():
    assert criu.parse_version(fixture("version-4.2.1.txt")) == (4, 2, 1)
    assert criu.parse_version(fixture("version-3.17.1.txt")) == (3, 17, 1)


def test_unreadable_version_is_an_error():
    with pytest.raises(AutopodError):
        criu.parse_version("criu: error while loading shared libraries")


@pytest.mark.parametrize("version, kernel, tcp, problems", [
    ((3, 17, 1), "6.1.0-28-amd64", True, 0),
    ((3, 17, 1), "6.18.44-fc-v669", False, 1),
    ((3, 17, 1), "6.18.44-fc-v669", True, 2),
    ((4, 1, 1), "6.18.44", False, 0),
    ((4, 1, 1), "6.18.44", True, 1),
    ((4, 1, 1), "6.15.2", True, 0),
    ((4, 2, 1), "6.18.44", True, 0),
    ((4, 0), "6.13.0", False, 1),
])
def test_kernel_rules(version, kernel, tcp, problems):
    found = criu.compatibility_problems(version, kernel, tcp)
    assert len(found) == problems
    for message in found:
        assert kernel in message and "or newer is needed" in message


def _dump(**fields):
    options = dict(pid=42, images_dir="/img", work_dir="/work", netns_inode=4026532000)
    options.update(fields)
    return criu.dump_argv("/usr/sbin/criu", criu.DumpOptions(**options))


def test_dump_argv_names_externals_and_never_uses_a_shell():
    argv = _dump(mounts=[MountSpec("/srv/data", "/data"), MountSpec("/srv/logs", "/var/log", True)])
    assert argv[:4] == ["/usr/sbin/criu", "dump", "--tree", "42"]
    assert "net[4026532000]:autopod-net" in argv
    assert "mnt[/data]:autopod-mnt-0" in argv and "mnt[/var/log]:autopod-mnt-1" in argv
    assert argv[argv.index("--network-lock") + 1] == "nftables"
    assert "--tcp-established" in argv and "--leave-running" not in argv and "--leave-stopped" not in argv
    assert not any(arg in ("sh", "-c", "/bin/sh") for arg in argv)


def test_dump_argv_without_tcp_and_leaving_running():
    argv = _dump(tcp_established=False, leave_running=True)
    assert "--tcp-established" not in argv and "--network-lock" not in argv
    assert argv[-1] == "--leave-running"


def test_a_move_dumps_through_its_socket_and_leaves_the_tree_stopped():
    streamed = _dump(leave_stopped=True, page_socket=9)
    assert "--leave-stopped" in streamed and "--page-server" in streamed
    assert streamed[streamed.index("--ps-socket") + 1] == "9" and "--address" not in streamed
    lazy = _dump(leave_stopped=True, lazy_pages=True, page_socket=9, status_fd=5)
    assert "--lazy-pages" in lazy and "--page-server" not in lazy, "a lazy dump serves its pages itself"
    assert lazy[lazy.index("--status-fd") + 1] == "5"


def test_restore_argv_maps_externals_to_this_host():
    argv = criu.restore_argv("criu", criu.RestoreOptions(images_dir="/img", work_dir="/work", rootfs="/pods/web",
                                                         netns_fd=7, mounts=[MountSpec("/srv/data", "/data")]))
    assert "fd[7]:autopod-net" in argv
    assert "mnt[autopod-mnt-0]:/srv/data" in argv
    assert argv[argv.index("--root") + 1] == "/pods/web"
    assert "--restore-detached" in argv and "--tcp-established" in argv and "--action-script" not in argv
    held = criu.restore_argv("criu", criu.RestoreOptions(images_dir="/img", work_dir="/w", rootfs="/r", netns_fd=7,
                                                         action_script="/run/autopod/criu-hold-v1"))
    assert held[held.index("--action-script") + 1] == "/run/autopod/criu-hold-v1"


def test_stats_dump_from_real_image():
    stats = parse_stats(fixture("stats-dump-4.2.1", "rb"))
    assert stats["kind"] == "dump"
    assert stats["frozen_time_us"] == 64251
    assert 0 < stats["freezing_time_us"] < stats["frozen_time_us"]
    assert stats["pages_written"] <= stats["pages_scanned"]


def test_stats_restore_from_real_image():
    stats = parse_stats(fixture("stats-restore-4.2.1", "rb"))
    assert stats["kind"] == "restore"
    assert stats["restore_time_us"] == 39612
    assert stats["forking_time_us"] == 292


@pytest.mark.parametrize("cut", [0, 6, 10, 20])
def test_truncated_stats_are_an_error(cut):
    with pytest.raises(ImageFormatError):
        parse_stats(fixture("stats-dump-4.2.1", "rb")[:cut])


def test_pagemap_from_real_image_counts_the_pages_file():
    pages_id, pages = criu_images.pagemap_pages(fixture("pagemap-4.2.1.img", "rb"))
    assert (pages_id, pages * criu_images.PAGE_SIZE) == (1, 3485696)


def test_a_post_copy_pagemap_counts_only_present_pages_and_knows_the_lazy_ones(tmp_path):
    assert criu_images.pagemap_pages(fixture("pagemap-lazy-4.2.1.img", "rb")) == (1, 8)
    (tmp_path / "pagemap-1.img").write_bytes(fixture("pagemap-lazy-4.2.1.img", "rb"))
    assert criu_images.lazy_pages(str(tmp_path)) == 2122
    (tmp_path / "pagemap-1.img").write_bytes(fixture("pagemap-4.2.1.img", "rb"))
    assert criu_images.lazy_pages(str(tmp_path)) == 0  # a plain dump: lazy-capable ranges are in the file


def test_damaged_pages_are_found(tmp_path):
    (tmp_path / "pagemap-7.img").write_bytes(fixture("pagemap-4.2.1.img", "rb"))
    (tmp_path / "pages-1.img").write_bytes(b"\0" * 3485696)
    assert criu_images.damaged_pages(str(tmp_path)) == []
    os.truncate(tmp_path / "pages-1.img", 4096)
    assert criu_images.damaged_pages(str(tmp_path)) == [
        "pages-1.img has 4096 bytes where pagemap-7.img expects 3485696"]
    (tmp_path / "pagemap-7.img").write_bytes(fixture("pagemap-4.2.1.img", "rb")[:30])
    assert "unreadable" in criu_images.damaged_pages(str(tmp_path))[0]


def _inventory(raw: bytes) -> dict:
    return criu_images._message(raw[8:])  # the inventory: its magic, one entry's length, the entry


def test_a_restore_skips_the_network_unlock_its_dump_recorded(tmp_path):
    """The inventory of a real CRIU 4.2.1 dump taken with --network-lock nftables (a lab move): afterwards it
    says skip, and nothing else in it changed."""
    raw = fixture("inventory-4.2.1.img", "rb")
    (tmp_path / "inventory.img").write_bytes(raw)
    before = _inventory(raw)
    assert before[criu_images.INVENTORY_NETWORK_LOCK] == 1  # nftables
    criu_images.skip_network_unlock(str(tmp_path))
    rewritten = (tmp_path / "inventory.img").read_bytes()
    assert rewritten[:4] == raw[:4] and len(rewritten) == len(raw)
    assert _inventory(rewritten) == {**before, criu_images.INVENTORY_NETWORK_LOCK: criu_images.NETWORK_LOCK_SKIP}
    assert os.stat(tmp_path / "inventory.img").st_mode & 0o777 == 0o600
    criu_images.skip_network_unlock(str(tmp_path))
    assert (tmp_path / "inventory.img").read_bytes() == rewritten


@pytest.mark.parametrize("cut", [3, 8, 40])
def test_a_damaged_inventory_is_an_error_and_stays_as_it_was(tmp_path, cut):
    damaged = fixture("inventory-4.2.1.img", "rb")[:cut]
    (tmp_path / "inventory.img").write_bytes(damaged)
    with pytest.raises(ImageFormatError):
        criu_images.skip_network_unlock(str(tmp_path))
    assert (tmp_path / "inventory.img").read_bytes() == damaged
    assert os.listdir(tmp_path) == ["inventory.img"]


def test_pre_copy_rounds_link_their_parents_on_both_sides():
    first = _dump(images_dir="/img/pre1", pre_dump=True, page_socket=9)
    second = _dump(images_dir="/img/pre2", pre_dump=True, page_socket=9, parent="../pre1")
    final = _dump(leave_stopped=True, page_socket=9, parent="pre2")
    assert first[1] == "pre-dump" and "--track-mem" in first and "--prev-images-dir" not in first
    assert second[second.index("--prev-images-dir") + 1] == "../pre1"
    assert "--tcp-established" not in second, "a pre-dump leaves the network alone"
    assert final[final.index("--prev-images-dir") + 1] == "pre2" and "--track-mem" in final
    assert "--tcp-established" in final
    server = criu.page_server_argv("/c", criu.PageServerOptions("/img/pre2", "/w", 8, parent="../pre1"))
    assert server[-2:] == ["--prev-images-dir", "../pre1"] and server[1] == "page-server"
    lazy = criu.page_server_argv("/c", criu.PageServerOptions("/img", "/w", 8, lazy=True))
    assert lazy[1] == "lazy-pages" and "--page-server" in lazy and lazy[lazy.index("--ps-socket") + 1] == "8"
