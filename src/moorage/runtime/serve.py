"""Run one instance: the HTTP front, the worker pools, and a clean stop on SIGTERM/SIGINT."""

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import sys

from moorage.http import HttpServer, Limits, malloc
from moorage.runtime.app import Instance
from moorage.runtime.config import RuntimeConfig

log = logging.getLogger("moorage.runtime")

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux for SIGTERM when the server that started us dies, so no instance outlives it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError, TypeError):
        return  # not Linux: the server stops its instances itself on a clean exit
    if os.getppid() != parent_pid:
        # It died before we could ask.
        os.kill(os.getpid(), signal.SIGTERM)


async def serve(config: RuntimeConfig) -> None:
    malloc.tune()
    instance = Instance(config)
    # A slow client gets as long to send its body as the model gets to answer it.
    server = HttpServer(
        instance.handle,
        Limits(max_body=config.max_payload, read_timeout=config.timeout_s),
        sink=instance.arena.lend,
    )
    if config.unix_socket:
        await server.listen_unix(config.unix_socket)
        address = f"unix:{config.unix_socket}"
    else:
        host, port = await server.listen_tcp(config.host, config.port)
        address = f"http://{host}:{port}"
    # The ready line: tests and the server read the bound address from it (port 0 works).
    print(f"moorage instance listening on {address}", flush=True)
    instance.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if config.parent_pid is not None:
        _die_with_parent(config.parent_pid)
    await stop.wait()
    log.info("stopping")
    await server.close(grace=config.timeout_s)
    await instance.stop()


def run(config: RuntimeConfig) -> None:
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s [front %(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        import uvloop
    except ImportError:  # uvloop is optional off Linux/macOS
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))
