"""A folder per digest in the cache, built exactly once across threads and processes."""

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks so large archives stay out of memory."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def build_once(cache_dir: Path, key: str, build: Callable[[Path], None]) -> Path:
    """Return ``cache_dir/key``, calling ``build(empty_folder)`` only if no one has yet.

    Guards the race where several workers (threads or processes) start on the same model at
    once: one takes the flock and builds into a temporary sibling, the others wait, re-check
    and reuse its result. The rename makes a half-built folder impossible to observe, so a
    folder that exists is complete and is reused without locking.
    """
    final = cache_dir / key
    if final.is_dir():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache_dir / f"{key}.lock"):
        if final.is_dir():
            return final
        _remove_partials(cache_dir, key)
        partial = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".partial", dir=cache_dir))
        try:
            build(partial)
            os.rename(partial, final)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return final


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    # flock, not fcntl.lockf: each open() gets its own lock, so threads of one process
    # exclude each other as well as other processes.
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove_partials(cache_dir: Path, key: str) -> None:
    # Holding the lock, any partial folder for this key was left by a builder that died.
    for leftover in cache_dir.glob(f".{key}.*.partial"):
        shutil.rmtree(leftover, ignore_errors=True)
