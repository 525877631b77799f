"""Turn a model location into what a worker loads: fetched, unpacked, requirements installed.

Runs in the front (off its event loop), once per model, before any worker starts, so that
workers only import and call ``model_fn``.
"""

from moorage.artifacts import Lease, ModelCache, install_requirements, resolve_code_dir
from moorage.runtime.config import RuntimeConfig
from moorage.runtime.worker import WorkerSpec


def prepare(
    url: str, config: RuntimeConfig, models: ModelCache, *, model_name: str | None = None
) -> tuple[WorkerSpec, Lease]:
    """The spec of the model's workers, and the lease keeping its folder on disk: release it
    once those workers are gone, not before, since a restarted worker loads it again."""
    lease = models.acquire(url)
    try:
        spec = _spec(lease, config, model_name)
    except BaseException:
        lease.release()
        raise
    return spec, lease


def _spec(lease: Lease, config: RuntimeConfig, model_name: str | None) -> WorkerSpec:
    model_dir = lease.path
    # Multi-model endpoints take each model's code from its own archive (the toolkits ignore
    # SAGEMAKER_SUBMIT_DIRECTORY there).
    submit_directory = None if config.multi_model else config.submit_directory
    code_dir = resolve_code_dir(model_dir, submit_directory, config.cache_dir / "code")
    extra_sys_path: tuple[str, ...] = ()
    requirements = code_dir / "requirements.txt" if code_dir else None
    if requirements is not None and requirements.is_file():
        installed = install_requirements(requirements, config.cache_dir / "requirements")
        extra_sys_path = (str(installed),)
    return WorkerSpec(
        model_dir=str(model_dir),
        code_dir=str(code_dir) if code_dir else None,
        program=config.program,
        default_accept=config.default_accept,
        http_client_errors=config.http_client_errors,
        model_name=model_name,
        extra_sys_path=extra_sys_path,
        log_level=config.log_level,
    )
