"""The loop both job kinds run: work when woken or every ``poll_s``, and renew the leases held
every third of their length, so a server that dies gives its work up one lease later."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def keep_working(
    work: Callable[[], Awaitable[None]],
    renew: Callable[[int], Awaitable[None]],
    wake: asyncio.Event,
    *,
    lease_s: float,
    poll_s: float,
    what: str,
) -> None:
    """Run ``work`` until cancelled; ``renew(until_ms)`` extends the leases held."""
    loop = asyncio.get_running_loop()
    renew_at = loop.time()
    while True:
        try:
            await work()
            if loop.time() >= renew_at:
                renew_at = loop.time() + lease_s / 3
                await renew(now_ms() + int(lease_s * 1000))
        except Exception:
            log.exception("%s pass failed; retrying", what)
        try:
            await asyncio.wait_for(wake.wait(), poll_s)
        except TimeoutError:
            pass
        wake.clear()


def now_ms() -> int:
    return time.time_ns() // 1_000_000
