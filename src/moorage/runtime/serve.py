"""Run one instance: the HTTP front, the worker pools, and a clean stop on SIGTERM/SIGINT."""

import asyncio
import logging
import signal
import sys

from moorage.http import HttpServer, Limits
from moorage.runtime import _malloc
from moorage.runtime.app import Instance
from moorage.runtime.config import RuntimeConfig

log = logging.getLogger("moorage.runtime")


async def serve(config: RuntimeConfig) -> None:
    _malloc.tune()
    instance = Instance(config)
    # A slow client gets as long to send its body as the model gets to answer it.
    server = HttpServer(
        instance.handle, Limits(max_body=config.max_payload, read_timeout=config.timeout_s)
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
