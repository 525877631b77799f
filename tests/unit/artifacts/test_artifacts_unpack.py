import os
import stat
import tarfile

import pytest

from moorage.artifacts import materialize
from moorage.artifacts.unpack import Limits, unpack
from moorage.errors import ArtifactError
from tests.unit.artifacts.artifact_tarballs import (
    folder,
    hardlink,
    regular,
    special,
    symlink,
    write_model,
    write_tar,
)


@pytest.mark.parametrize(
    ("members", "offender"),
    [
        pytest.param([regular("/etc/cron.d/evil", b"x")], "/etc/cron.d/evil", id="absolute"),
        pytest.param([regular("../evil", b"x")], "../evil", id="dotdot"),
        pytest.param([regular("code/../../evil", b"x")], "code/../../evil", id="nested-dotdot"),
        pytest.param([symlink("escape", "../../outside")], "escape", id="symlink-out"),
        pytest.param([symlink("escape", "/etc/passwd")], "escape", id="symlink-absolute"),
        pytest.param(
            [regular("secret", b"x"), hardlink("link", "/etc/passwd")], "link", id="hardlink-out"
        ),
        pytest.param([hardlink("link", "../secret")], "link", id="hardlink-dotdot"),
        pytest.param([hardlink("link", "not-in-archive")], "link", id="hardlink-missing"),
        pytest.param([special("null", tarfile.CHRTYPE)], "null", id="char-device"),
        pytest.param([special("sda", tarfile.BLKTYPE)], "sda", id="block-device"),
        pytest.param([special("pipe", tarfile.FIFOTYPE)], "pipe", id="fifo"),
        pytest.param([regular("a", b"x"), regular("a/b", b"y")], "a/b", id="file-folder-clash"),
        pytest.param([regular("x" * 256, b"x")], "x" * 256, id="long-segment"),
    ],
)
def test_unpack_refuses_unsafe_members(tmp_path, members, offender):
    archive = write_tar(tmp_path / "evil.tar.gz", members)

    with pytest.raises(ArtifactError) as refused:
        materialize(str(archive), tmp_path / "cache")

    assert "evil.tar.gz" in str(refused.value)
    assert repr(offender) in str(refused.value)
    assert not (tmp_path / "outside").exists()


def test_unpack_refuses_writing_through_a_link_made_to_escape_later(tmp_path):
    # "p" is inside when written (q does not exist yet); once q -> ".", p means the parent.
    members = [symlink("p", "q/x/../.."), symlink("q", "."), regular("p/evil", b"x")]
    archive = write_tar(tmp_path / "evil.tar.gz", members)

    with pytest.raises(ArtifactError, match="'p/evil'"):
        materialize(str(archive), tmp_path / "cache")

    assert not (tmp_path / "evil").exists()


def test_unpack_refuses_a_link_that_a_later_member_makes_escape(tmp_path):
    archive = write_tar(tmp_path / "evil.tar.gz", [symlink("p", "q/x/../.."), symlink("q", ".")])

    with pytest.raises(ArtifactError, match="'p' is a symlink that resolves outside"):
        materialize(str(archive), tmp_path / "cache")


def test_unpack_keeps_links_that_stay_inside(tmp_path):
    members = [
        regular("blobs/1234", b"weights"),
        folder("snapshots/main"),
        symlink("snapshots/main/model.bin", "../../blobs/1234"),
        hardlink("copy.bin", "blobs/1234"),
    ]
    archive = write_tar(tmp_path / "model.tar.gz", members)

    model = materialize(str(archive), tmp_path / "cache")

    assert (model / "snapshots" / "main" / "model.bin").read_bytes() == b"weights"
    assert os.readlink(model / "snapshots" / "main" / "model.bin") == "../../blobs/1234"
    assert os.stat(model / "copy.bin").st_ino == os.stat(model / "blobs" / "1234").st_ino


def test_unpack_keeps_permissions_without_setuid_or_group_write(tmp_path):
    members = [
        regular("run.sh", b"#!/bin/sh\n", mode=0o4775),
        regular("shared.txt", b"", mode=0o666),
        regular("readonly.txt", b"", mode=0o400),
        folder("locked", mode=0o500),
        regular("locked/inside.txt", b"x"),
    ]
    model = materialize(str(write_tar(tmp_path / "m.tar", members)), tmp_path / "cache")

    def mode(name: str) -> int:
        return stat.S_IMODE(os.stat(model / name).st_mode)

    assert mode("run.sh") == 0o755
    assert mode("shared.txt") == 0o644
    assert mode("readonly.txt") == 0o600
    assert mode("locked") == 0o700
    assert (model / "locked" / "inside.txt").read_bytes() == b"x"


def test_unpack_lets_a_repeated_name_replace_the_earlier_member(tmp_path):
    members = [regular("model.bin", b"old"), regular("model.bin", b"new")]
    model = materialize(str(write_tar(tmp_path / "m.tar", members)), tmp_path / "cache")

    assert (model / "model.bin").read_bytes() == b"new"


def test_unpack_refuses_more_than_the_unpacked_size_limit(tmp_path):
    archive = write_model(tmp_path / "big.tar.gz", {"a.bin": b"x" * 600, "b.bin": b"x" * 600})

    with pytest.raises(ArtifactError, match=r"'b.bin' takes the unpacked size over the limit"):
        materialize(str(archive), tmp_path / "cache", max_unpacked_bytes=1000)


def test_unpack_refuses_an_archive_over_the_size_limit(tmp_path):
    archive = write_model(tmp_path / "big.tar.gz", {"a.bin": os.urandom(4096)})

    with pytest.raises(ArtifactError, match=r"big.tar.gz is \d+ bytes, over the limit of 1000"):
        materialize(str(archive), tmp_path / "cache", max_archive_bytes=1000)


def test_unpack_refuses_more_members_than_the_limit(tmp_path):
    archive = write_model(tmp_path / "many.tar", {f"{n}.txt": b"" for n in range(3)})
    dest = tmp_path / "dest"
    dest.mkdir()

    with pytest.raises(ArtifactError, match="more than 2 members"):
        unpack(archive, dest, Limits(members=2), source="many.tar")


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"definitely not a tar archive" * 40, id="garbage"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\x1f\x8b\x08\x00" + b"\x00" * 20, id="truncated-gzip"),
    ],
)
def test_unpack_refuses_what_is_not_a_tar(tmp_path, content):
    (tmp_path / "model.tar.gz").write_bytes(content)

    with pytest.raises(ArtifactError, match=r"model\.tar\.gz is not a readable tar archive"):
        materialize(str(tmp_path / "model.tar.gz"), tmp_path / "cache")


def test_unpack_refuses_a_corrupt_gzip_stream(tmp_path):
    archive = write_model(tmp_path / "model.tar.gz", {"model.bin": os.urandom(100_000)})
    data = bytearray(archive.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    archive.write_bytes(bytes(data))

    with pytest.raises(ArtifactError, match="not a readable tar archive"):
        materialize(str(archive), tmp_path / "cache")
