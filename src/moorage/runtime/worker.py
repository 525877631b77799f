"""A worker process: loads one model, then answers requests from the front, one at a time.

Forked from the zygote (``zygote.py``), which then calls ``run``, or, where it cannot be,
started by the front as ``python -m moorage.runtime.worker SPEC_JSON FD``; FD is its end of a
socket pair. It first sends ``("ready", pid)`` or ``("failed", kind, message)``, then for each
``(headers, model_name)`` + body it sends ``(status, content_type, headers)`` + body. No event
loop and no threads: the front answers ``/ping`` and enforces timeouts, so the worker can spend
its whole time in the model. It exits when the front closes the socket.
"""

import json
import logging
import os
import signal
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, cast

from moorage.errors import LoadError
from moorage.http import malloc
from moorage.runtime import frames
from moorage.runtime.messages import InferenceRequest

log = logging.getLogger("moorage.worker")


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker loads; travels as JSON on the worker's command line."""

    model_dir: str
    code_dir: str | None
    program: str | None
    default_accept: str
    model_name: str | None = None
    extra_sys_path: tuple[str, ...] = ()
    log_level: int = logging.INFO

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "WorkerSpec":
        raw = json.loads(text)
        raw["extra_sys_path"] = tuple(raw.get("extra_sys_path") or ())
        return cls(**raw)


def run(spec: WorkerSpec, fd: int) -> int:
    # Ctrl-C reaches the whole process group; the front decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    malloc.tune()
    sock = socket.socket(fileno=fd)
    # Imported here so that a failing import of numpy or user code is reported as a load error.
    from moorage.runtime.handlers import Handler

    try:
        handler = Handler.load(
            Path(spec.model_dir),
            Path(spec.code_dir) if spec.code_dir else None,
            spec.program,
            default_accept=spec.default_accept,
            model_name=spec.model_name,
            extra_sys_path=[Path(p) for p in spec.extra_sys_path],
        )
    except (LoadError, MemoryError) as exc:
        kind = "memory" if isinstance(exc, MemoryError) or _is_memory(exc) else "load"
        log.error("model load failed: %s", exc)
        frames.send(sock, ("failed", kind, str(exc) or type(exc).__name__))
        return 3
    frames.send(sock, ("ready", os.getpid()))
    stream = cast(BinaryIO, sock.makefile("rb", buffering=256 * 1024))
    invoke = handler.invoke
    while True:
        message = frames.receive(stream)
        if message is None:
            return 0
        (headers, model_name), body = message
        response = invoke(InferenceRequest(body, headers, model_name))
        frames.send(sock, (response.status, response.content_type, response.headers), response.body)


def _is_memory(exc: BaseException) -> bool:
    return isinstance(exc.__cause__, MemoryError) or "MemoryError" in str(exc)


def main() -> None:
    spec = WorkerSpec.from_json(sys.argv[1])
    logging.basicConfig(
        level=spec.log_level,
        format="%(asctime)s %(levelname)s [worker %(process)d] %(name)s: %(message)s",
    )
    sys.exit(run(spec, int(sys.argv[2])))


if __name__ == "__main__":
    main()
