"""RuntimeConfig: everything an instance process needs, read once at start.

Precedence: command-line flag > ``SAGEMAKER_*`` / ``MOORAGE_*`` variable > default. Nothing
reads the environment after this (the worker processes get their settings from the spec).
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from moorage.artifacts import DiskBudget
from moorage.artifacts.eviction import DEFAULT_MIN_FREE_BYTES
from moorage.contract import DEFAULT_ACCEPT, MAX_PAYLOAD_BYTES, Env
from moorage.errors import ValidationError

DEFAULT_PORT = 8080
DEFAULT_TIMEOUT_S = 60.0
# What the zygote imports before forking workers, each only if installed: what inference.py
# files and the default handlers most often import. Torch is left out: heavy, and a CUDA
# context must not be made before a fork.
DEFAULT_PRELOAD = (
    "numpy",
    "scipy",
    "pandas",
    "joblib",
    "sklearn",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.tree",
    "xgboost",
    "lightgbm",
)
# A single-model instance loads once and cannot know which of those its model needs; it
# preloads only what the default handlers use, so a model without scikit-learn neither waits
# for it nor holds it in memory.
SINGLE_MODEL_PRELOAD = ("numpy",)


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    host: str
    port: int
    unix_socket: str | None
    # Where the single model lives: a folder, archive or URL. None in multi-model mode.
    model_url: str | None
    base_dir: Path
    program: str | None
    submit_directory: str | None
    multi_model: bool
    # Worker processes per model.
    workers: int
    timeout_s: float
    default_accept: str
    max_payload: int
    cache_dir: Path
    log_level: int
    # Requests waiting for a free worker, per model, before new ones get 503.
    queue_size: int = 100
    # Multi-model: a load is refused with 507 when less memory than this would stay available,
    # or when this many models are loaded already (0: no limit).
    min_free_bytes: int = 256 * 1024 * 1024
    max_models: int = 0
    # Multi-model: bound on the private memory of all loaded models' workers; a load that would
    # pass it is refused with 507 (0: no budget).
    memory_budget_bytes: int = 0
    # Disk the unpacked models may take (MOORAGE_MODEL_CACHE_MB, MOORAGE_MODEL_CACHE_MIN_FREE_MB);
    # models no process uses are evicted to stay within it.
    model_cache: DiskBudget = field(default_factory=DiskBudget)
    # Fork workers from a pre-imported zygote process (else spawn a fresh interpreter each).
    use_zygote: bool = False
    # Modules the zygote imports before it forks (MOORAGE_PRELOAD; default: DEFAULT_PRELOAD
    # in multi-model mode, SINGLE_MODEL_PRELOAD otherwise).
    preload: tuple[str, ...] = DEFAULT_PRELOAD
    # Set by the moorage server: each worker also listens on a Unix socket named from this
    # prefix (``contract.frames.worker_socket``), where the server sends invocations directly.
    worker_sockets: str | None = None
    # Set by the moorage server: the instance stops when that process dies, even by SIGKILL.
    parent_pid: int | None = None
    # MOORAGE_HTTP_CLIENT_ERRORS: answer 415 / 406 / 400 when the default input_fn or output_fn
    # cannot handle a request. Off by default: the toolkits answer 500 (TOOLKIT.md §6).
    http_client_errors: bool = False


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(f"{name}={raw!r} is not an integer") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValidationError(f"{name}={env[name]!r} is not true or false")


def _budget(env: Mapping[str, str]) -> int:
    megabytes = _int(env, "MOORAGE_MEMORY_BUDGET_MB", 0)
    if megabytes < 0:
        raise ValidationError(f"MOORAGE_MEMORY_BUDGET_MB={megabytes} must be 0 (none) or more")
    return megabytes * 1024 * 1024


def _megabytes(env: Mapping[str, str], name: str, default: int) -> int:
    megabytes = _int(env, name, default)
    if megabytes < 0:
        raise ValidationError(f"{name}={megabytes} must be 0 or more megabytes")
    return megabytes * 1024 * 1024


def _preload(env: Mapping[str, str], is_multi: bool) -> tuple[str, ...]:
    raw = env.get("MOORAGE_PRELOAD")
    if raw is None:
        return DEFAULT_PRELOAD if is_multi else SINGLE_MODEL_PRELOAD
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    for name in names:
        if not all(part.isidentifier() for part in name.split(".")):
            raise ValidationError(f"MOORAGE_PRELOAD names {name!r}, which is not a module name")
    return names


def _timeout(env: Mapping[str, str]) -> float:
    # The newer variable is true seconds and wins; the older one is seconds here (MMS alone
    # reads it as minutes, a bug moorage does not copy).
    for name in (Env.MODEL_SERVER_TIMEOUT_SECONDS, Env.MODEL_SERVER_TIMEOUT):
        if env.get(name):
            value = _int(env, name, 0)
            if value <= 0:
                raise ValidationError(f"{name}={env[name]!r} must be a positive number of seconds")
            return float(value)
    return DEFAULT_TIMEOUT_S


def _default_cache_dir(env: Mapping[str, str]) -> Path:
    if env.get("MOORAGE_CACHE_DIR"):
        return Path(env["MOORAGE_CACHE_DIR"])
    xdg = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "moorage"


def load_config(
    *,
    model_url: str | None = None,
    host: str | None = None,
    port: int | None = None,
    unix_socket: str | None = None,
    workers: int | None = None,
    multi_model: bool | None = None,
    cache_dir: str | None = None,
    worker_sockets: str | None = None,
    env: Mapping[str, str] | None = None,
) -> RuntimeConfig:
    env = os.environ if env is None else env
    base_dir = Path(env.get(Env.BASE_DIR) or "/opt/ml")
    is_multi = multi_model if multi_model is not None else env.get(Env.MULTI_MODEL) == "true"
    if model_url is None and not is_multi:
        model_url = str(base_dir / "model")
    # One worker per core, as MMS and gunicorn default; multi-model loads one per model, since
    # each worker holds its own copy of the model.
    default_workers = 1 if is_multi else (os.cpu_count() or 1)
    worker_count = (
        workers if workers is not None else _int(env, Env.MODEL_SERVER_WORKERS, default_workers)
    )
    if worker_count < 1:
        raise ValidationError(f"worker count must be at least 1, got {worker_count}")
    max_payload_mb = env.get(Env.MAX_PAYLOAD_IN_MB)
    max_payload = (
        _int(env, Env.MAX_PAYLOAD_IN_MB, 6) * 1024 * 1024 if max_payload_mb else MAX_PAYLOAD_BYTES
    )
    log_level = _int(env, Env.CONTAINER_LOG_LEVEL, 20)
    return RuntimeConfig(
        host=host or "127.0.0.1",
        port=port if port is not None else _int(env, Env.BIND_TO_PORT, DEFAULT_PORT),
        unix_socket=unix_socket,
        model_url=model_url,
        base_dir=base_dir,
        program=env.get(Env.PROGRAM) or None,
        submit_directory=env.get(Env.SUBMIT_DIRECTORY) or None,
        multi_model=is_multi,
        workers=worker_count,
        timeout_s=_timeout(env),
        default_accept=env.get(Env.DEFAULT_INVOCATIONS_ACCEPT) or DEFAULT_ACCEPT,
        max_payload=max_payload,
        cache_dir=Path(cache_dir) if cache_dir else _default_cache_dir(env),
        log_level=log_level,
        min_free_bytes=_int(env, "MOORAGE_MIN_FREE_MEMORY_MB", 256) * 1024 * 1024,
        max_models=_int(env, "MOORAGE_MAX_LOADED_MODELS", 0),
        memory_budget_bytes=_budget(env),
        model_cache=DiskBudget(
            max_bytes=_megabytes(env, "MOORAGE_MODEL_CACHE_MB", 0),
            min_free_bytes=_megabytes(
                env, "MOORAGE_MODEL_CACHE_MIN_FREE_MB", DEFAULT_MIN_FREE_BYTES // 2**20
            ),
        ),
        # Multi-model instances start workers all the time, so a zygote pays off there; a
        # single-model instance starts its workers once, and an extra process holding the
        # preloaded libraries would only add to its memory (MOORAGE_ZYGOTE=on opts in).
        use_zygote=_bool(env, "MOORAGE_ZYGOTE", is_multi),
        preload=_preload(env, is_multi),
        worker_sockets=worker_sockets,
        parent_pid=_int(env, "MOORAGE_PARENT_PID", 0) or None,
        http_client_errors=_bool(env, "MOORAGE_HTTP_CLIENT_ERRORS", False),
    )
