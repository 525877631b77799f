"""Build real tar archives, hostile ones included, for the artifacts tests."""

import io
import tarfile
from collections.abc import Iterable
from pathlib import Path

Member = tuple[tarfile.TarInfo, bytes]


def regular(name: str, data: bytes = b"", mode: int = 0o644) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


def folder(name: str, mode: int = 0o755) -> Member:
    return _special(name, tarfile.DIRTYPE, mode=mode)


def symlink(name: str, target: str) -> Member:
    return _special(name, tarfile.SYMTYPE, linkname=target)


def hardlink(name: str, target: str) -> Member:
    return _special(name, tarfile.LNKTYPE, linkname=target)


def special(name: str, kind: bytes) -> Member:
    """A device or FIFO member: ``kind`` is tarfile.CHRTYPE, BLKTYPE or FIFOTYPE."""
    return _special(name, kind)


def write_tar(path: Path, members: Iterable[Member]) -> Path:
    """Write ``members`` verbatim (no name cleaning) to ``path``, gzipped if it says so."""
    gzipped = path.name.endswith((".gz", ".tgz"))
    with tarfile.open(path, "w:gz") if gzipped else tarfile.open(path, "w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def write_model(path: Path, files: dict[str, bytes]) -> Path:
    return write_tar(path, [regular(name, data) for name, data in files.items()])


def _special(name: str, kind: bytes, *, linkname: str = "", mode: int = 0o755) -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    return info, b""
