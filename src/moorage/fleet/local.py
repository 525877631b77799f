"""Instances as local processes.

The built-in runtime listens on a Unix socket (cheapest hop, PERFORMANCE.md); a user's serve
command gets a TCP port in ``SAGEMAKER_BIND_TO_PORT``. Each instance's output goes to its own
log stream file. Instances inherit the server's environment, so they stay findable as its
descendants, plus the model's ``Environment``.
"""

import asyncio
import contextlib
import glob
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from moorage.fleet.images import ImageKind, classify_image, command_path

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    endpoint: str
    variant: str
    instance_id: str
    image: str | None
    model_data_url: str | None
    environment: Mapping[str, str] = field(default_factory=dict)
    is_multi_model: bool = False


@dataclass(slots=True)
class Instance:
    """A started instance: where it listens and how to reach its process."""

    spec: InstanceSpec
    process: asyncio.subprocess.Process
    log_path: Path
    unix_socket: str | None = None
    port: int | None = None
    # The built-in runtime's workers listen on sockets named from this prefix
    # (``contract.frames.worker_socket``), where invocations go without the front's hop.
    worker_sockets: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def is_running(self) -> bool:
        return self.process.returncode is None


def log_path(logs_dir: Path, endpoint: str, variant: str, instance_id: str) -> Path:
    """Where an instance's output goes: one stream per instance, as SageMaker's log streams."""
    return logs_dir / endpoint / variant / f"{instance_id}.log"


class LocalProcessFleet:
    def __init__(
        self, *, logs_dir: Path, runtime_dir: Path, cache_dir: Path, stop_grace_s: float
    ) -> None:
        self._logs_dir = logs_dir
        # Unix socket paths are limited to ~107 bytes, so they live in a short private folder.
        self._runtime_dir = runtime_dir
        self._cache_dir = cache_dir
        self._stop_grace_s = stop_grace_s

    async def start(self, spec: InstanceSpec) -> Instance:
        path = log_path(self._logs_dir, spec.endpoint, spec.variant, spec.instance_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **spec.environment, "MOORAGE_PARENT_PID": str(os.getpid())}
        if spec.is_multi_model:
            env["SAGEMAKER_MULTI_MODEL"] = "true"
        workdir = self._runtime_dir / spec.instance_id
        workdir.mkdir(parents=True, exist_ok=True)
        env["SAGEMAKER_BASE_DIR"] = str(workdir)
        unix_socket: str | None = None
        worker_sockets: str | None = None
        port: int | None = None
        if classify_image(spec.image) is ImageKind.LOCAL_COMMAND:
            assert spec.image is not None
            port = _free_port()
            env["SAGEMAKER_BIND_TO_PORT"] = str(port)
            env["SAGEMAKER_SAFE_PORT_RANGE"] = f"{port}-{port}"
            command = [command_path(spec.image), "serve"]
            if spec.model_data_url:
                env["MOORAGE_MODEL_DATA_URL"] = spec.model_data_url
        else:
            unix_socket = str(self._runtime_dir / f"{spec.instance_id}.sock")
            worker_sockets = str(self._runtime_dir / spec.instance_id)
            command = [sys.executable, "-m", "moorage.runtime"]
            if spec.model_data_url and not spec.is_multi_model:
                command.append(spec.model_data_url)
            command += ["--unix-socket", unix_socket, "--worker-sockets", worker_sockets]
            command += ["--cache-dir", str(self._cache_dir)]
            if spec.is_multi_model:
                command.append("--multi-model")
        with path.open("ab") as stream:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=subprocess.DEVNULL,
                stdout=stream,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=workdir,
                # Its own group, so stopping it also stops the workers it started.
                start_new_session=True,
            )
        log.info(
            "started instance %s of %s/%s (pid %d)",
            spec.instance_id,
            spec.endpoint,
            spec.variant,
            process.pid,
        )
        return Instance(spec, process, path, unix_socket, port, worker_sockets)

    async def stop(self, instance: Instance, grace: float | None = None) -> None:
        """SIGTERM the instance's process group, SIGKILL it if it is still there after grace."""
        process = instance.process
        grace = self._stop_grace_s if grace is None else grace
        if process.returncode is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                log.warning("instance %s ignored SIGTERM; killing it", instance.spec.instance_id)
        # Workers left behind by a killed front are in the same group.
        _signal_group(process.pid, signal.SIGKILL)
        await process.wait()
        leftovers = [instance.unix_socket] if instance.unix_socket else []
        if instance.worker_sockets:
            # Those of workers killed with their instance.
            leftovers += glob.glob(f"{glob.escape(instance.worker_sockets)}.*")
        for leftover in leftovers:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _free_port() -> int:
    # A serve command needs a port number before it starts; the short race with another
    # process binding the same port in between is detected as a failed /ping.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
