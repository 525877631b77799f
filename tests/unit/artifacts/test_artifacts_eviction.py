"""The models cache within its disk budget: LRU eviction of what no process uses."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from moorage.artifacts import DiskBudget, ModelCache
from moorage.artifacts.cache import build_once
from tests.unit.artifacts.artifact_tarballs import write_model

ROOMY = DiskBudget(max_bytes=1 << 50, min_free_bytes=0)
# No filesystem has this much free, so the floor alone evicts every idle model.
FULL_DISK = DiskBudget(max_bytes=1 << 50, min_free_bytes=1 << 62)


@pytest.fixture
def archives(tmp_path):
    """Eight model archives of equal size, each knowing its own name."""
    made = {}
    for name in "abcdefgh":
        files = {"name.txt": name.encode(), "weights.bin": os.urandom(64 * 1024)}
        made[name] = write_model(tmp_path / f"{name}.tar.gz", files)
    return made


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "cache" / "models"


def use(cache: ModelCache, archive: Path) -> str:
    """Load a model from the cache as an instance does, and let go of it; its name."""
    with cache.acquire(str(archive)) as lease:
        return (lease.path / "name.txt").read_text()


def entries(folder: Path) -> set[str]:
    """The names of the models unpacked in the cache (their name.txt)."""
    return {
        (entry / "name.txt").read_text()
        for entry in folder.iterdir()
        if entry.is_dir() and not entry.name.startswith(".")
    }


def one_model_bytes(folder: Path, archive: Path) -> int:
    """What one model takes on disk, measured in a scratch cache."""
    scratch = ModelCache(folder.with_name("scratch"), ROOMY)
    use(scratch, archive)
    return scratch.used_bytes()


def test_acquire_unpacks_once_and_leases_the_folder(folder, archives):
    cache = ModelCache(folder, ROOMY)

    with cache.acquire(str(archives["a"])) as first, cache.acquire(str(archives["a"])) as again:
        assert first.path == again.path
        assert first.path.parent == folder
        assert (first.path / "name.txt").read_text() == "a"


def test_eviction_takes_the_least_recently_used_first(folder, archives):
    size = one_model_bytes(folder, archives["a"])
    for age, name in enumerate("abc"):
        use(ModelCache(folder, ROOMY), archives[name])
        # Explicit times, a the oldest: the clock may not tick between two uses.
        os.utime(folder_of(folder, name), (1000 + age, 1000 + age))
    # Room for two: using a makes it the most recent, so b and c are older when d arrives.
    cache = ModelCache(folder, DiskBudget(max_bytes=2 * size + size // 2, min_free_bytes=0))
    assert use(cache, archives["a"]) == "a"

    with cache.acquire(str(archives["d"])):
        assert entries(folder) == {"a", "d"}


def folder_of(folder: Path, name: str) -> Path:
    return next(p for p in folder.iterdir() if p.is_dir() and (p / "name.txt").read_text() == name)


def test_models_cycling_through_a_small_cache_stay_within_its_budget(folder, archives):
    size = one_model_bytes(folder, archives["a"])
    budget = 2 * size + size // 2
    cache = ModelCache(folder, DiskBudget(max_bytes=budget, min_free_bytes=0))

    for _ in range(2):  # the second round finds each model evicted, and unpacks it again
        for name, archive in archives.items():
            assert use(cache, archive) == name
            assert cache.used_bytes() <= budget
            assert len(entries(folder)) <= 2

    # Nothing half deleted is left behind: only the two models and their lock files.
    assert [p for p in folder.iterdir() if p.name.startswith(".")] == []


def test_eviction_skips_a_model_in_use_in_another_process(folder, archives):
    cache = ModelCache(folder, ROOMY)
    for name in "abc":
        use(cache, archives[name])
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(folder), str(archives["a"])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"

        assert len(ModelCache(folder, FULL_DISK).evict()) == 2
        assert entries(folder) == {"a"}
    finally:
        holder.communicate("")
    assert holder.returncode == 0

    assert len(ModelCache(folder, FULL_DISK).evict()) == 1
    assert entries(folder) == set()


_HOLD = """
import sys
from pathlib import Path
from moorage.artifacts import DiskBudget, ModelCache

cache = ModelCache(Path(sys.argv[1]), DiskBudget(max_bytes=1 << 50, min_free_bytes=0))
with cache.acquire(sys.argv[2]) as lease:
    print("held", flush=True)
    sys.stdin.read()
    assert (lease.path / "name.txt").read_text() == "a"
"""


def test_a_full_disk_evicts_every_idle_model_and_keeps_those_in_use(folder, archives):
    cache = ModelCache(folder, ROOMY)
    for name in "abc":
        use(cache, archives[name])

    with ModelCache(folder, FULL_DISK).acquire(str(archives["d"])) as lease:
        assert entries(folder) == {"d"}
        assert (lease.path / "name.txt").read_text() == "d"


def test_an_evicted_model_is_unpacked_again_when_used(folder, archives):
    cache = ModelCache(folder, ROOMY)
    use(cache, archives["a"])
    ModelCache(folder, FULL_DISK).evict()
    assert entries(folder) == set()

    assert use(cache, archives["a"]) == "a"


def test_eviction_leaves_a_build_under_way_alone(folder, archives):
    cache = ModelCache(folder, ROOMY)
    use(cache, archives["a"])
    started, finish = threading.Event(), threading.Event()

    def build(partial: Path) -> None:
        (partial / "first").write_text("1")
        started.set()
        assert finish.wait(10)
        (partial / "second").write_text("2")

    built: list[Path] = []
    builder = threading.Thread(target=lambda: built.append(build_once(folder, "k", build)))
    builder.start()
    assert started.wait(10)
    evicted = ModelCache(folder, FULL_DISK).evict()
    finish.set()
    builder.join()

    assert len(evicted) == 1
    assert built == [folder / "k"]
    assert sorted(p.name for p in built[0].iterdir()) == ["first", "second"]


def test_threads_loading_through_a_cache_that_evicts_all_the_time_read_whole_models(
    folder, archives
):
    # A budget of one byte: every load evicts every model not in use, as they are used.
    cache = ModelCache(folder, DiskBudget(max_bytes=1, min_free_bytes=0))
    names = list(archives)
    seen: list[str] = []

    def load_many(offset: int) -> None:
        for step in range(12):
            name = names[(offset + step) % 3]
            with cache.acquire(str(archives[name])) as lease:
                seen.append((lease.path / "name.txt").read_text() + name)
                assert (lease.path / "weights.bin").stat().st_size == 64 * 1024

    threads = [threading.Thread(target=load_many, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(set(seen)) == ["aa", "bb", "cc"]
    assert len(seen) == 48


def test_an_abandoned_partial_folder_is_removed(folder):
    # What a builder killed mid-build, or an eviction cut short, leaves behind.
    abandoned = folder / ".k.x1y2z3.partial"
    abandoned.mkdir(parents=True)
    (abandoned / "weights.bin").write_bytes(b"w")

    ModelCache(folder, ROOMY).evict()

    assert not abandoned.exists()


def test_a_local_model_folder_is_used_in_place_and_never_evicted(folder, tmp_path):
    model = tmp_path / "mine"
    model.mkdir()
    (model / "name.txt").write_text("mine")
    cache = ModelCache(folder, FULL_DISK)

    with cache.acquire(str(model)) as lease:
        assert lease.path == model.resolve()
    cache.evict()

    assert (model / "name.txt").read_text() == "mine"
