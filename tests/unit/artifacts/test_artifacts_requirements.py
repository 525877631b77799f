import subprocess
import sys
from pathlib import Path

import pytest

from moorage.artifacts import install_requirements
from moorage.errors import LoadError
from tests.fixtures.builders import build_wheel


def _python(code: str, *, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(path)} if path else {}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )


def test_install_requirements_installs_into_the_cache_not_the_environment(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    build_wheel(code)
    (code / "requirements.txt").write_text("--no-index\n./tinypkg-1.0-py3-none-any.whl\n")

    installed = install_requirements(code / "requirements.txt", tmp_path / "cache")

    assert installed.parent == tmp_path / "cache"
    imported = _python("import tinypkg; print(tinypkg.greeting())", path=installed)
    assert imported.stdout == "hello from tinypkg\n"
    assert _python("import tinypkg").returncode != 0


def test_install_requirements_installs_the_same_file_once(tmp_path, caplog):
    caplog.set_level("INFO", logger="moorage.artifacts")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        build_wheel(tmp_path / name)
        (tmp_path / name / "requirements.txt").write_text(
            "--no-index\n./tinypkg-1.0-py3-none-any.whl\n"
        )

    first = install_requirements(tmp_path / "a" / "requirements.txt", tmp_path / "cache")
    second = install_requirements(tmp_path / "b" / "requirements.txt", tmp_path / "cache")

    assert first == second
    assert sum(record.getMessage().startswith("Installing") for record in caplog.records) == 1


def test_install_requirements_names_the_requirement_that_failed(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("--no-index\ndefinitely-not-a-real-pkg-xyz==9.9\n")

    with pytest.raises(LoadError, match=r"definitely-not-a-real-pkg-xyz==9\.9") as failed:
        install_requirements(requirements, tmp_path / "cache")

    assert str(requirements) in str(failed.value)
    assert [path.name for path in (tmp_path / "cache").iterdir() if path.is_dir()] == []


def test_install_requirements_errors_when_the_file_is_missing(tmp_path):
    with pytest.raises(LoadError, match=r"requirements\.txt"):
        install_requirements(tmp_path / "requirements.txt", tmp_path / "cache")
