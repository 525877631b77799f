"""Install a model's requirements.txt into the cache, never into the running environment."""

import hashlib
import logging
import re
import subprocess
import sys
from pathlib import Path

from moorage.artifacts.cache import build_once
from moorage.errors import LoadError

_log = logging.getLogger(__name__)

# The lines pip prints when a requirement cannot be resolved; group 1 is the requirement.
_UNRESOLVED = (
    re.compile(r"No matching distribution found for (\S+)"),
    re.compile(r"Could not find a version that satisfies the requirement (\S+)"),
)


def install_requirements(requirements_txt: Path, cache_dir: Path) -> Path:
    """pip-install ``requirements_txt`` into a cached folder and return it, for sys.path.

    The folder is keyed by the file's content and the Python version, so models with the same
    requirements share one install, made once even by concurrent workers. Relative paths in
    the file (local wheels) are resolved from its folder. Raises LoadError naming the
    requirement that failed.
    """
    try:
        content = requirements_txt.read_bytes()
    except OSError as exc:
        raise LoadError(f"Cannot read {requirements_txt}: {exc}") from exc
    # cache_tag ("cpython-311") changes with the interpreter and minor version, as wheels do.
    key = hashlib.sha256(content + b"\0" + sys.implementation.cache_tag.encode()).hexdigest()
    return build_once(cache_dir, key, lambda target: _pip_install(requirements_txt, target))


def _pip_install(requirements_txt: Path, target: Path) -> None:
    _log.info("Installing %s into %s", requirements_txt, target)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--target",
        str(target),
        "-r",
        str(requirements_txt.resolve()),
    ]
    done = subprocess.run(
        command, cwd=requirements_txt.parent, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise LoadError(f"Installing {requirements_txt} failed: {_failure(done.stderr)}")


def _failure(stderr: str) -> str:
    """The requirement pip could not install, or its last ERROR line."""
    for pattern in _UNRESOLVED:
        match = pattern.search(stderr)
        if match:
            return f"no distribution matches the requirement {match.group(1)!r}"
    errors = [line for line in stderr.splitlines() if line.startswith("ERROR:")]
    if errors:
        return errors[-1].removeprefix("ERROR:").strip()
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else "pip exited with an error and printed nothing"
