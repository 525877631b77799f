"""Server configuration: frozen, built once in ``cli/`` (flag > ``MOORAGE_*`` > default)."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from moorage.errors import ValidationError

# SageMaker ARNs need a 12-digit account; moorage has none, so it uses a fixed fake one.
DEFAULT_ACCOUNT = "000000000000"
DEFAULT_REGION = "us-east-1"


class ConsoleSetting(StrEnum):
    """``MOORAGE_CONSOLE``: whether ``/console`` answers. A browser cannot sign requests, so
    ``auto`` opens it only on a server that checks no signatures (loopback development)."""

    ON = "on"
    OFF = "off"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str
    port: int
    data_dir: Path
    region: str = DEFAULT_REGION
    account: str = DEFAULT_ACCOUNT
    # InvokeEndpoint's limits (spec/LIMITS.md §1).
    invocation_timeout_s: float = 60.0
    max_payload: int = 6 * 1024 * 1024
    # Seconds an instance gets to pass /ping when the variant does not say.
    startup_timeout_s: float = 240.0
    # SIGTERM, then SIGKILL this many seconds later (spec/CONTAINER.md §1).
    stop_grace_s: float = 30.0
    # Multi-model endpoints (spec/LIMITS.md §6): a request waiting this long for its model's
    # load is answered ModelNotReadyException while the load goes on, for up to the timeout.
    model_load_wait_s: float = 60.0
    model_load_timeout_s: float = 360.0
    # Serverless variants: an instance with no request for this long is stopped (scale to zero,
    # down to the ProvisionedConcurrency kept warm).
    serverless_idle_s: float = 300.0
    # Asynchronous inference: a server that dies gives up the requests it was running this
    # long after its last renewal, and they run again (seconds).
    async_lease_s: float = 30.0
    # Transform jobs: a server that dies gives up the jobs it was running this long after its
    # last renewal, and they run again from the start (seconds).
    transform_lease_s: float = 30.0
    # Data capture: captured invocations are written out at least this often (seconds).
    capture_flush_s: float = 5.0
    # Memory each multi-model instance may fill with models; None: from the instance type.
    memory_budget_mb: int | None = None
    # Disk the unpacked models may take, and the free space to keep on their filesystem
    # (MOORAGE_MODEL_CACHE_MB, MOORAGE_MODEL_CACHE_MIN_FREE_MB); None: the cache's defaults.
    model_cache_mb: int | None = None
    model_cache_min_free_mb: int | None = None
    # AWS shared-credentials file whose keys may sign requests; None: no signatures checked,
    # which the server allows on loopback only (DESIGN.md §8).
    credentials_file: Path | None = None
    # SQLAlchemy URL of the store (sqlite:///… or postgresql://…); None: SQLite in data_dir.
    database_url: str | None = None
    # Host names an unsigned server answers besides IP addresses and localhost
    # (MOORAGE_ALLOWED_HOSTS, comma-separated; api.hosts says why).
    allowed_hosts: tuple[str, ...] = ()
    # The web console (MOORAGE_CONSOLE); with ``auto``, off when signatures are checked.
    console: ConsoleSetting = ConsoleSetting.AUTO

    @property
    def store_url(self) -> str:
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'moorage.db'}"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def instances_dir(self) -> Path:
        return self.data_dir / "instances"

    @property
    def transform_dir(self) -> Path:
        """Where transform jobs stage their outputs until the job is done."""
        return self.data_dir / "transform"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ValidationError(f"{name}={raw!r} must be positive")
    return value


def _megabytes(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if not raw:
        return None
    if not raw.strip().isdigit():
        raise ValidationError(f"{name}={raw!r} must be a whole number of megabytes, 0 or more")
    return int(raw)


def _console(env: Mapping[str, str]) -> ConsoleSetting:
    raw = env.get("MOORAGE_CONSOLE") or "auto"
    try:
        return ConsoleSetting(raw.strip().lower())
    except ValueError:
        raise ValidationError(f"MOORAGE_CONSOLE={raw!r} must be on, off or auto") from None


def load_server_config(
    *,
    host: str | None = None,
    port: int | None = None,
    data_dir: str | None = None,
    credentials_file: str | None = None,
    database_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ServerConfig:
    env = os.environ if env is None else env
    directory = data_dir or env.get("MOORAGE_DATA_DIR") or str(Path.home() / ".moorage")
    account = env.get("MOORAGE_ACCOUNT", DEFAULT_ACCOUNT)
    credentials = credentials_file or env.get("MOORAGE_CREDENTIALS_FILE")
    if not (account.isdigit() and len(account) == 12):
        raise ValidationError(f"MOORAGE_ACCOUNT={account!r} must be 12 digits")
    return ServerConfig(
        host=host or env.get("MOORAGE_HOST") or "127.0.0.1",
        port=port if port is not None else int(env.get("MOORAGE_PORT") or 8080),
        data_dir=Path(directory).absolute(),
        database_url=database_url or env.get("MOORAGE_DATABASE_URL") or None,
        region=env.get("MOORAGE_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
        account=account,
        invocation_timeout_s=_number(env, "MOORAGE_INVOCATION_TIMEOUT", 60.0),
        startup_timeout_s=_number(env, "MOORAGE_STARTUP_TIMEOUT", 240.0),
        stop_grace_s=_number(env, "MOORAGE_STOP_GRACE", 30.0),
        model_load_wait_s=_number(env, "MOORAGE_MODEL_LOAD_WAIT", 60.0),
        model_load_timeout_s=_number(env, "MOORAGE_MODEL_LOAD_TIMEOUT", 360.0),
        serverless_idle_s=_number(env, "MOORAGE_SERVERLESS_IDLE", 300.0),
        async_lease_s=_number(env, "MOORAGE_ASYNC_LEASE", 30.0),
        transform_lease_s=_number(env, "MOORAGE_TRANSFORM_LEASE", 30.0),
        capture_flush_s=_number(env, "MOORAGE_CAPTURE_FLUSH_INTERVAL", 5.0),
        memory_budget_mb=int(_number(env, "MOORAGE_MEMORY_BUDGET_MB", 0)) or None,
        model_cache_mb=_megabytes(env, "MOORAGE_MODEL_CACHE_MB"),
        model_cache_min_free_mb=_megabytes(env, "MOORAGE_MODEL_CACHE_MIN_FREE_MB"),
        credentials_file=Path(credentials).absolute() if credentials else None,
        console=_console(env),
        allowed_hosts=tuple(
            name.strip() for name in env.get("MOORAGE_ALLOWED_HOSTS", "").split(",") if name.strip()
        ),
    )
