"""Safe extraction of model archives (.tar.gz, .tgz, .tar), member by member.

Nothing is handed to ``TarFile.extract``: every name, link and size is checked here first, so a
hostile archive cannot write or point outside the destination, whatever the Python version.
"""

import gzip
import logging
import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from moorage.artifacts.cache import build_once, file_sha256
from moorage.artifacts.names import unsafe_reason
from moorage.errors import ArtifactError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")

MAX_ARCHIVE_BYTES = 20 * 1024**3
MAX_UNPACKED_BYTES = 20 * 1024**3
MAX_MEMBERS = 1_000_000

_log = logging.getLogger(__name__)

# What a damaged archive raises from tarfile or from gzip underneath it.
_UNREADABLE = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Caps on what one model source may take from the disk."""

    archive_bytes: int = MAX_ARCHIVE_BYTES
    unpacked_bytes: int = MAX_UNPACKED_BYTES
    members: int = MAX_MEMBERS


def is_archive_name(name: str) -> bool:
    return name.endswith(ARCHIVE_SUFFIXES)


def unpack_cached(archive: Path, cache_dir: Path, limits: Limits, *, source: str) -> Path:
    """Unpack ``archive`` into ``cache_dir/<sha256 of its bytes>``, once; ``source`` names it."""
    size = archive.stat().st_size
    if size > limits.archive_bytes:
        raise ArtifactError(
            f"Archive {source} is {size} bytes, over the limit of {limits.archive_bytes}."
        )
    return build_once(
        cache_dir, file_sha256(archive), lambda dest: unpack(archive, dest, limits, source=source)
    )


def unpack(archive: Path, dest: Path, limits: Limits, *, source: str) -> None:
    """Extract ``archive`` into the empty folder ``dest``; ArtifactError if anything is unsafe."""
    _log.info("Unpacking %s into %s", source, dest)
    try:
        with archive.open("rb") as raw:
            is_gzip = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip else raw
            # Stream mode reads the archive once, front to back, which is all gzip allows
            # cheaply; hard links are made from files already written, so nothing seeks back.
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                _Extractor(tar, dest, limits, source).run()
            # tarfile stops at the end-of-archive blocks, before gzip's trailer. Reading on
            # makes gzip check its CRC, the only check that catches a damaged byte in data
            # that deflate stored uncompressed.
            while stream.read(_CHUNK):
                pass
    except _UNREADABLE as exc:
        raise ArtifactError(f"{source} is not a readable tar archive: {exc}") from exc


def _file_mode(mode: int) -> int:
    # No setuid/setgid/sticky and no group/other write; the owner can always read and write.
    return (mode & 0o755) | 0o600


def _dir_mode(mode: int) -> int:
    return (mode & 0o755) | 0o700


class _Extractor:
    def __init__(self, tar: tarfile.TarFile, dest: Path, limits: Limits, source: str) -> None:
        self._tar = tar
        self._root = Path(os.path.realpath(dest))
        self._limits = limits
        self._source = source
        self._members = 0
        self._bytes = 0
        self._files: set[Path] = set()
        self._dirs: dict[Path, int] = {}
        self._symlinks: dict[Path, str] = {}

    def run(self) -> None:
        for member in self._tar:
            self._members += 1
            if self._members > self._limits.members:
                raise ArtifactError(
                    f"Refusing to unpack {self._source}: more than {self._limits.members} members."
                )
            try:
                self._extract(member)
            except _UNREADABLE:
                raise  # a damaged archive, not a member we failed to write (BadGzipFile is OSError)
            except OSError as exc:
                raise self._refused(member.name, f"could not be written: {exc}") from exc
        # A later member can turn a path inside a link's target into a link itself, so a link
        # that was safe when written may not be any more; check them all once nothing moves.
        for link, name in self._symlinks.items():
            if not self._is_inside(os.path.realpath(link)):
                raise self._refused(name, "is a symlink that resolves outside the archive")
        # Modes last, deepest first, so a read-only folder does not stop its own contents.
        for folder in sorted(self._dirs, key=lambda path: len(path.parts), reverse=True):
            os.chmod(folder, self._dirs[folder])

    def _extract(self, member: tarfile.TarInfo) -> None:
        parts = self._parts(member.name, member.name)
        if not parts:
            return  # the archive's own root, "./"
        parent = self._parent(parts, member.name)
        target = parent / parts[-1]
        if member.isdir():
            if os.path.lexists(target) and not target.is_dir():
                raise self._refused(member.name, "is a folder but a file of that name exists")
            target.mkdir(exist_ok=True)
            self._dirs[target] = _dir_mode(member.mode)
            return
        if target.is_dir() and not target.is_symlink():
            raise self._refused(member.name, "is a file but a folder of that name exists")
        if os.path.lexists(target):
            # A repeated name: the later member wins, as with tar(1).
            target.unlink()
            self._files.discard(target)
            self._symlinks.pop(target, None)
        if member.isreg():
            self._write_file(member, target)
        elif member.issym():
            self._write_symlink(member, parent, target)
        elif member.islnk():
            self._write_hardlink(member, target)
        else:
            raise self._refused(member.name, "is a device, FIFO or other special file")

    def _write_file(self, member: tarfile.TarInfo, target: Path) -> None:
        self._bytes += member.size
        if self._bytes > self._limits.unpacked_bytes:
            raise self._refused(
                member.name,
                f"takes the unpacked size over the limit of {self._limits.unpacked_bytes} bytes",
            )
        data = self._tar.extractfile(member)
        if data is None:
            raise self._refused(member.name, "has no data")
        # O_EXCL|O_NOFOLLOW: never write through a link, even one raced in after the unlink.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with data, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(data, out, _CHUNK)
        os.chmod(target, _file_mode(member.mode))
        self._files.add(target)

    def _write_symlink(self, member: tarfile.TarInfo, parent: Path, target: Path) -> None:
        link = member.linkname
        if not link or "\0" in link or os.path.isabs(link):
            raise self._refused(member.name, f"is a symlink to {link!r}, which is not relative")
        if not self._is_inside(os.path.realpath(parent / link)):
            raise self._refused(member.name, f"is a symlink to {link!r}, outside the archive")
        os.symlink(link, target)
        self._symlinks[target] = member.name

    def _write_hardlink(self, member: tarfile.TarInfo, target: Path) -> None:
        parts = self._parts(member.linkname, member.name)
        source = Path(os.path.realpath(self._root.joinpath(*parts)))
        if not parts or source not in self._files or not self._is_inside(str(source)):
            raise self._refused(
                member.name,
                f"is a hard link to {member.linkname!r}, not a file earlier in the archive",
            )
        os.link(source, target, follow_symlinks=False)
        self._files.add(target)

    def _parts(self, name: str, member_name: str) -> list[str]:
        if name.startswith("/"):
            raise self._refused(member_name, f"has the absolute path {name!r}")
        parts = [part for part in name.split("/") if part not in ("", ".")]
        reason = unsafe_reason(parts) if "\0" not in name else "contains a NUL byte"
        if reason:
            raise self._refused(member_name, f"{reason} ({name!r})")
        return parts

    def _parent(self, parts: list[str], member_name: str) -> Path:
        # realpath follows links already written and keeps missing folders as they are, so if
        # it lands inside the root, creating the missing folders cannot leave the root.
        parent = os.path.realpath(self._root.joinpath(*parts[:-1]))
        if not self._is_inside(parent):
            raise self._refused(member_name, "would be written through a link outside the archive")
        Path(parent).mkdir(parents=True, exist_ok=True)
        return Path(parent)

    def _is_inside(self, real_path: str) -> bool:
        return Path(real_path).is_relative_to(self._root)

    def _refused(self, member_name: str, reason: str) -> ArtifactError:
        return ArtifactError(f"Refusing to unpack {self._source}: member {member_name!r} {reason}.")
