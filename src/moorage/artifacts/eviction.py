"""The models cache within a disk budget: what is in use is leased, the rest evicted LRU first.

Every process that hands a cached model folder to workers (each instance, and the server for
user containers) holds a :class:`Lease` on it, a shared flock on ``<key>.use``, from before it
trusts the folder exists until the workers using it are gone. Eviction takes that lock
exclusively without waiting, so a folder in use by any process is skipped, and renames the
folder to a build-partial name before deleting it, so ``build_once`` never takes a half-deleted
folder for a complete one: the next load of that model simply fetches and unpacks it again.
Recency is the folder's mtime, touched when a lease is taken and released, so the order
survives restarts.
"""

import fcntl
import logging
import os
import secrets
import shutil
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from moorage.artifacts.fetch import materialize
from moorage.errors import ArtifactError

# Without a set budget the cache may take this share of what it could grow to: its own size
# plus the free space of its filesystem. The rest is left to logs, requirements and others.
DEFAULT_SHARE = 0.5
DEFAULT_MIN_FREE_BYTES = 1024 * 1024 * 1024
# A folder evicted between being built and being leased is built again; under a budget too
# small for the models in use that could go on, so it stops here.
_ATTEMPTS = 3

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DiskBudget:
    """How much disk the models cache may hold; only models no process uses are evicted for it."""

    # 0: DEFAULT_SHARE of the cache's size plus its filesystem's free space.
    max_bytes: int = 0
    # Also evict while the filesystem has less free space than this.
    min_free_bytes: int = DEFAULT_MIN_FREE_BYTES


class Lease:
    """Keeps a model folder on disk until :meth:`release`: no process evicts it meanwhile."""

    __slots__ = ("_fd", "path")

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    def release(self) -> None:
        """Let the folder be evicted again; safe to call more than once."""
        fd, self._fd = self._fd, None
        if fd is not None:
            # A model stays loaded, leased, for as long as it is used: its last use is now.
            _touch(self.path)
            os.close(fd)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


class ModelCache:
    """The folder where model data is unpacked, kept within a :class:`DiskBudget`."""

    def __init__(self, folder: Path, budget: DiskBudget) -> None:
        self.folder = folder
        self.budget = budget
        # Entry name → (inode, bytes): a built entry never changes, so its size is read once;
        # a new inode means it was evicted and built again.
        self._sizes: dict[str, tuple[int, int]] = {}

    def acquire(self, url: str) -> Lease:
        """Materialize ``url`` here and lease the folder, then evict down to the budget.

        A folder outside the cache (a local model folder used in place) is never evicted; its
        lease holds nothing. Raises ArtifactError as ``materialize`` does.
        """
        for _ in range(_ATTEMPTS):
            path = materialize(url, self.folder)
            if path.parent != self.folder:
                return Lease(path, None)
            lease = _hold(path)
            if lease is not None:
                try:
                    self.evict()
                except OSError as exc:
                    # The model is here and leased: a cache that cannot shrink must not stop it.
                    _log.warning("cannot evict models from %s: %s", self.folder, exc)
                return lease
        raise ArtifactError(
            f"Model data {url} was evicted from {self.folder} {_ATTEMPTS} times before it could "
            "be used: the models in use take the whole disk budget (MOORAGE_MODEL_CACHE_MB)."
        )

    def evict(self) -> list[str]:
        """Remove the least recently used folders no process is using until the cache is
        within budget; return their names."""
        _remove_abandoned_partials(self.folder)
        entries = sorted(self._entries())
        used = sum(size for _, _, size in entries)
        free = _free_bytes(self.folder)
        limit = self.budget.max_bytes or int((used + free) * DEFAULT_SHARE)
        evicted: list[str] = []
        for _, name, size in entries:
            if used <= limit and free >= self.budget.min_free_bytes:
                break
            if _remove_if_idle(self.folder / name):
                used -= size
                free += size
                evicted.append(name)
        if evicted:
            _log.info(
                "evicted %d models from %s to stay within its budget", len(evicted), self.folder
            )
        return evicted

    def used_bytes(self) -> int:
        """Disk taken by the complete model folders now in the cache."""
        return sum(size for _, _, size in self._entries())

    def _entries(self) -> list[tuple[float, str, int]]:
        """(mtime, name, bytes) of each complete folder; builds and removals under way start
        with a dot and are not entries."""
        found: list[tuple[float, str, int]] = []
        try:
            scan = list(os.scandir(self.folder))
        except FileNotFoundError:
            return found
        sizes: dict[str, tuple[int, int]] = {}
        for entry in scan:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                stat = entry.stat(follow_symlinks=False)
                known = self._sizes.get(entry.name)
                size = known[1] if known and known[0] == stat.st_ino else _disk_bytes(entry.path)
            except FileNotFoundError:
                continue  # evicted by another process meanwhile
            sizes[entry.name] = (stat.st_ino, size)
            found.append((stat.st_mtime, entry.name, size))
        self._sizes = sizes
        return found


def _use_lock(folder: Path) -> Path:
    return folder.with_name(f"{folder.name}.use")


def _hold(folder: Path) -> Lease | None:
    """Lease ``folder`` if it still exists: an eviction may have taken it since it was built."""
    fd = os.open(_use_lock(folder), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        # Waits only while an eviction renames this folder away.
        fcntl.flock(fd, fcntl.LOCK_SH)
        if folder.is_dir():
            _touch(folder)
            return Lease(folder, fd)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def _touch(folder: Path) -> None:
    with suppress(OSError):  # a read-only cache still serves, in a worse order
        os.utime(folder)


def _remove_if_idle(folder: Path) -> bool:
    fd = os.open(_use_lock(folder), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # leased: a process is loading or serving from it
        # build_once's partial pattern, so a removal cut short is swept as an abandoned build.
        doomed = folder.with_name(f".{folder.name}.{secrets.token_hex(6)}.partial")
        try:
            os.rename(folder, doomed)
        except FileNotFoundError:
            return False  # another process evicted it first
    finally:
        os.close(fd)
    shutil.rmtree(doomed, ignore_errors=True)
    return True


def _remove_abandoned_partials(cache_dir: Path) -> None:
    """Delete partial folders whose builder died, or whose removal was cut short.

    A builder holds ``<key>.lock`` from before it creates its partial folder until it renames
    it, so a partial whose lock is free belongs to no build under way.
    """
    try:
        partials = [p for p in cache_dir.glob(".*.partial") if p.is_dir()]
    except FileNotFoundError:
        return
    for partial in partials:
        key = partial.name[1:].split(".", 1)[0]
        fd = os.open(cache_dir / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a build of that key is under way
        else:
            shutil.rmtree(partial, ignore_errors=True)
        finally:
            os.close(fd)


def _disk_bytes(folder: str) -> int:
    """Blocks taken by a folder tree, each hard-linked file once."""
    total = os.lstat(folder).st_blocks * 512
    seen: set[int] = set()
    pending = [folder]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                stat = entry.stat(follow_symlinks=False)
                if stat.st_nlink > 1 and not entry.is_dir(follow_symlinks=False):
                    if stat.st_ino in seen:
                        continue
                    seen.add(stat.st_ino)
                total += stat.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
    return total


def _free_bytes(folder: Path) -> int:
    try:
        stat = os.statvfs(folder)
    except FileNotFoundError:
        return 0
    return stat.f_bavail * stat.f_frsize
