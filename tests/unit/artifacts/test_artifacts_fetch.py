from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from moorage.artifacts import materialize
from moorage.errors import ArtifactError
from tests.unit.artifacts.artifact_tarballs import regular, write_model, write_tar

MODEL = {"model.joblib": b"weights", "code/inference.py": b"def model_fn(d):\n    return d\n"}


def _unpack_count(caplog: pytest.LogCaptureFixture) -> int:
    return sum(record.getMessage().startswith("Unpacking") for record in caplog.records)


def test_materialize_returns_a_local_folder_as_it_is(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.bin").write_bytes(b"x")

    result = materialize(str(tmp_path / "model" / ".." / "model"), tmp_path / "cache")

    assert result == model.resolve()
    assert not (tmp_path / "cache").exists()


def test_materialize_unpacks_a_tar_gz_into_the_cache(tmp_path):
    archive = write_model(tmp_path / "model.tar.gz", MODEL)

    result = materialize(str(archive), tmp_path / "cache")

    assert result.parent == tmp_path / "cache"
    assert (result / "model.joblib").read_bytes() == b"weights"
    assert (result / "code" / "inference.py").is_file()


@pytest.mark.parametrize("name", ["model.tgz", "model.tar"])
def test_materialize_unpacks_other_archive_suffixes(tmp_path, name):
    archive = write_model(tmp_path / name, MODEL)

    assert (materialize(str(archive), tmp_path / "cache") / "model.joblib").is_file()


def test_materialize_accepts_file_urls_of_archives_and_folders(tmp_path):
    archive = write_model(tmp_path / "model.tar.gz", MODEL)

    unpacked = materialize(archive.as_uri(), tmp_path / "cache")

    assert (unpacked / "model.joblib").read_bytes() == b"weights"
    assert materialize(tmp_path.as_uri(), tmp_path / "cache") == tmp_path.resolve()


def test_materialize_keeps_a_leading_dot_slash_out_of_paths(tmp_path):
    archive = write_tar(tmp_path / "m.tar.gz", [regular("./model.bin", b"w")])

    assert (materialize(str(archive), tmp_path / "cache") / "model.bin").read_bytes() == b"w"


def test_materialize_reuses_an_unpacked_archive(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="moorage.artifacts")
    archive = write_model(tmp_path / "model.tar.gz", MODEL)
    copy = tmp_path / "elsewhere.tar.gz"
    copy.write_bytes(archive.read_bytes())

    first = materialize(str(archive), tmp_path / "cache")
    second = materialize(str(copy), tmp_path / "cache")

    assert first == second
    assert _unpack_count(caplog) == 1


def test_materialize_unpacks_once_for_concurrent_threads(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="moorage.artifacts")
    archive = write_model(tmp_path / "model.tar.gz", MODEL)
    start = threading.Barrier(8)

    def fetch(_: int) -> Path:
        start.wait()
        return materialize(str(archive), tmp_path / "cache")

    with ThreadPoolExecutor(8) as pool:
        results = set(pool.map(fetch, range(8)))

    assert len(results) == 1
    assert _unpack_count(caplog) == 1


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.unpacks = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.unpacks += record.getMessage().startswith("Unpacking")


def _materialize_in_child(
    archive: str, cache_dir: str, start: Barrier, results: Queue[tuple[str, int]]
) -> None:
    recorder = _Recorder()
    logger = logging.getLogger("moorage.artifacts")
    logger.setLevel(logging.INFO)
    logger.addHandler(recorder)
    start.wait()
    path = materialize(archive, Path(cache_dir))
    results.put((str(path), recorder.unpacks))


def test_materialize_unpacks_once_for_concurrent_processes(tmp_path):
    archive = write_model(tmp_path / "model.tar.gz", MODEL)
    # spawn: a fork of the pytest process would inherit its threads and locks.
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    results = context.Queue()
    args = (str(archive), str(tmp_path / "cache"), start, results)
    children = [context.Process(target=_materialize_in_child, args=args) for _ in range(4)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)

    assert [child.exitcode for child in children] == [0] * 4
    assert len({path for path, _ in outcomes}) == 1
    assert sum(unpacks for _, unpacks in outcomes) == 1


def test_materialize_cleans_up_after_a_refused_archive(tmp_path):
    archive = write_tar(tmp_path / "bad.tar.gz", [regular("ok.bin"), regular("/etc/evil")])

    with pytest.raises(ArtifactError):
        materialize(str(archive), tmp_path / "cache")

    assert [name for name in os.listdir(tmp_path / "cache") if not name.endswith(".lock")] == []


def test_materialize_errors_when_the_path_does_not_exist(tmp_path):
    with pytest.raises(ArtifactError, match="nothing-here"):
        materialize(str(tmp_path / "nothing-here.tar.gz"), tmp_path / "cache")


def test_materialize_errors_on_a_file_that_is_not_an_archive(tmp_path):
    (tmp_path / "model.joblib").write_bytes(b"x")

    with pytest.raises(ArtifactError, match="neither a folder nor"):
        materialize(str(tmp_path / "model.joblib"), tmp_path / "cache")


def test_materialize_errors_on_an_unsupported_scheme(tmp_path):
    with pytest.raises(ArtifactError, match="only paths"):
        materialize("https://example.com/model.tar.gz", tmp_path / "cache")


def test_materialize_takes_a_path_with_a_colon_as_a_path(tmp_path):
    (tmp_path / "churn:v1").mkdir()

    assert materialize(str(tmp_path / "churn:v1"), tmp_path / "cache") == tmp_path / "churn:v1"
