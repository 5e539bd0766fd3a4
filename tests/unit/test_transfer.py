"""The migration channel: framing, tar streams and rootfs deltas, over a socket pair."""

from __future__ import annotations

import io
import os
import socket
import stat
import tarfile
import threading

import pytest

from ansible_collections.autopod.autopod.plugins.module_utils import rootfs_delta, tar_stream, transfer
from ansible_collections.autopod.autopod.plugins.module_utils.errors import AutopodError


@pytest.fixture
def channels():
    left, right = socket.socketpair()
    a, b = transfer.Channel(left), transfer.Channel(right)
    yield a, b
    a.close()
    b.close()


def sync(channels, source, destination):
    """One delta pass from source to destination; returns what was sent."""
    sender, receiver = channels
    send, delete = rootfs_delta.tree_delta(rootfs_delta.scan_tree(str(source)), rootfs_delta.scan_tree(str(destination)))
    worker = threading.Thread(target=lambda: sender.send_tree(str(source), send))
    worker.start()
    rootfs_delta.apply_deletions(str(destination), delete)
    receiver.receive_tree(str(destination))
    worker.join()
    return send, delete


def test_messages_and_trees_interleave(channels, tmp_path):
    sender, receiver = channels
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    for index in range(13):  # enough entries that tar's end-of-archive block crosses a record boundary
        os.symlink("target-%d" % index, tmp_path / "src" / ("link-%d" % index))
    names = sorted(os.listdir(tmp_path / "src"))

    def send():
        sender.send({"type": "one"})
        sender.send_tree(str(tmp_path / "src"), names)
        sender.send({"type": "two"})
        sender.send_tree(str(tmp_path / "src"), [])
        sender.send({"type": "three"})
    worker = threading.Thread(target=send)
    worker.start()
    assert receiver.expect("one")
    receiver.receive_tree(str(tmp_path / "dst"))
    assert receiver.expect("two")
    receiver.receive_tree(str(tmp_path / "dst"))
    assert receiver.expect("three")
    worker.join()
    assert sorted(os.listdir(tmp_path / "dst")) == names


def test_second_pass_sends_only_changes_and_handles_links_and_devices(channels, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "etc").mkdir(parents=True)
    dst.mkdir()
    (src / "etc" / "data").write_text("1")
    os.link(src / "etc" / "data", src / "etc" / "hardlink")
    os.mknod(src / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (src / "gone").write_text("x")
    first, nothing_deleted = sync(channels, src, dst)
    assert nothing_deleted == []
    assert set(first) == {"etc", "etc/data", "etc/hardlink", "null", "gone"}
    assert rootfs_delta.tree_delta(rootfs_delta.scan_tree(str(src)), rootfs_delta.scan_tree(str(dst))) == ([], [])

    (src / "etc" / "data").write_text("22")  # both names of the inode change
    (src / "gone").unlink()
    second, deleted = sync(channels, src, dst)
    assert set(second) == {"etc/data", "etc/hardlink"} and deleted == ["gone"]
    assert (dst / "etc" / "hardlink").read_text() == "22"
    assert os.stat(dst / "etc" / "data").st_ino == os.stat(dst / "etc" / "hardlink").st_ino
    assert stat.S_ISCHR(os.stat(dst / "null").st_mode)


def _member(name, kind=tarfile.REGTYPE, linkname=""):
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, linkname
    return member


@pytest.mark.parametrize("member", [
    _member("../outside"), _member("/etc/passwd"), _member("a/../../outside"), _member(""),
    _member("hard", tarfile.LNKTYPE, "../outside"), _member("hard", tarfile.LNKTYPE, "/etc/shadow"),
])
def test_a_member_escaping_the_destination_is_refused(tmp_path, member):
    with pytest.raises(AutopodError, match="refused"):
        tar_stream.Guard(str(tmp_path)).check(member)


def _device(name, kind, major, minor):
    member = _member(name, kind)
    member.devmajor, member.devminor = major, minor
    return member


@pytest.mark.parametrize("member", [_device("dev/sda", tarfile.BLKTYPE, 8, 0),
                                    _device("dev/mem", tarfile.CHRTYPE, 1, 1),
                                    _device("dev/kmsg", tarfile.CHRTYPE, 1, 11)])
def test_device_nodes_other_than_a_minimal_dev_are_refused(tmp_path, member):
    with pytest.raises(AutopodError, match="refused device node"):
        tar_stream.Guard(str(tmp_path)).check(member)
    tar_stream.Guard(str(tmp_path)).check(_device("dev/null", tarfile.CHRTYPE, 1, 3))


def test_a_directory_sent_where_a_symlink_stands_replaces_it_and_leaves_its_target_alone(channels, tmp_path):
    """The destination holds `data` -> /etc-like target; the tree sends a directory `data` owned by
    nobody, mode 0777: the symlink goes, the target keeps its owner and mode."""
    src, dst, target = tmp_path / "src", tmp_path / "dst", tmp_path / "target"
    (src / "data").mkdir(parents=True)
    os.chmod(src / "data", 0o777)
    os.chown(src / "data", 65534, 65534)
    dst.mkdir()
    target.mkdir(mode=0o700)
    os.symlink(str(target), dst / "data")
    sync(channels, src, dst)
    assert not os.path.islink(dst / "data") and stat.S_IMODE(os.stat(dst / "data").st_mode) == 0o777
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o700 and os.stat(target).st_uid == 0


def test_a_symlink_cannot_carry_a_later_member_outside(tmp_path):
    """The tree makes `etc` a symlink to the host's /etc, then sends etc/evil: refused, never written."""
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    os.symlink("/etc", tmp_path / "src" / "etc")
    guard = tar_stream.Guard(str(tmp_path / "dst"))
    guard.check(_member("etc", tarfile.SYMTYPE, "/etc"))
    os.symlink("/etc", tmp_path / "dst" / "etc")
    with pytest.raises(AutopodError, match="points outside"):
        guard.check(_member("etc/evil"))


def test_a_file_that_shrinks_while_it_is_read_is_padded_for_the_next_pass_to_correct():
    padded = tar_stream.Padded(io.BytesIO(b"ab"))
    assert padded.read(5) == b"ab\0\0\0" and padded.read(3) == b"\0\0\0" and padded.read(0) == b""


def test_a_broken_connection_is_an_error(channels):
    sender, receiver = channels
    sender.close()
    with pytest.raises(AutopodError):
        receiver.receive()


def test_remote_errors_are_told_apart(channels):
    sender, receiver = channels
    sender.send({"type": "error", "msg": "destination: no room"})
    with pytest.raises(transfer.RemoteError) as err:
        receiver.expect("ready")
    assert "no room" in err.value.msg
