"""The folder of the workers' status files (runtime/pool.py): private, and self-cleaning."""

import os
import shutil
import tempfile
from pathlib import Path

from moorage.runtime.pool import make_status_root


def test_status_root_is_named_for_its_front_and_removes_those_of_dead_fronts():
    root = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else Path(tempfile.gettempdir())
    # Beyond any pid the kernel hands out, so certainly not a live front.
    stale = root / "moorage-workers-999999999-x-"
    stale.mkdir(exist_ok=True)
    (stale / "0").write_bytes(bytes(8))
    mine = make_status_root()
    try:
        assert not stale.exists()
        assert mine.is_dir()
        assert mine.name.startswith(f"moorage-workers-{os.getpid()}-")
        # A second front's sweep leaves a live front's folder alone.
        other = make_status_root()
        shutil.rmtree(other)
        assert mine.is_dir()
    finally:
        shutil.rmtree(mine, ignore_errors=True)
        shutil.rmtree(stale, ignore_errors=True)
