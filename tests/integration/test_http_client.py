"""The pooled HTTP/1.1 client (the proxy hop) against a real instance and scripted raw servers.

Every test runs on both event loops the server may use: asyncio's and uvloop's.
"""

import asyncio
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvloop

from moorage.http import (
    ClientResponse,
    ConnectionPool,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamTimeout,
)
from tests.fixtures.builders import model_dir
from tests.integration.instance import running_instance

TIMEOUT = 10.0


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request) -> Callable[[Awaitable[object]], object]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def run(main):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)

    return run


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~107 bytes; pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="moorage-") as name:
        yield Path(name)


@pytest.fixture(scope="module")
def instance_socket(tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("client")
    with tempfile.TemporaryDirectory(prefix="moorage-") as name:
        path = f"{name}/instance.sock"
        args = ("--unix-socket", path)
        with running_instance(model_dir("identity", tmp / "m"), tmp, args=args, wait_ready=False):
            asyncio.run(_wait_ready(path))
            yield path


async def _wait_ready(path: str) -> None:
    async with ConnectionPool(unix_path=path) as pool:
        for _ in range(600):
            try:
                if (await pool.request("GET", "/ping", [], b"", timeout=TIMEOUT)).status == 200:
                    return
            except UpstreamConnectError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("instance not ready within 30 s")


# A raw server whose answers each test scripts, one coroutine per connection.


class RawConnection:
    def __init__(
        self, server: "RawServer", reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer

    async def read_request(self) -> tuple[bytes, bytes] | None:
        """The next request's head and body; None when the client closed."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return head, await self.reader.readexactly(length)

    def write(self, data: bytes) -> None:
        self.writer.write(data)


class RawServer:
    def __init__(self, script: Callable[[RawConnection], Awaitable[None]]) -> None:
        self.script = script
        self.accepted = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.handlers: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            await self.script(RawConnection(self, reader, writer))
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


@asynccontextmanager
async def raw_server(path: Path, script) -> AsyncIterator[RawServer]:
    raw = RawServer(script)
    server = await asyncio.start_unix_server(raw._serve, str(path))
    try:
        yield raw
    finally:
        server.close()
        await server.wait_closed()
        # The client closed its connections, so the scripts see EOF and end.
        if raw.handlers:
            await asyncio.wait(raw.handlers, timeout=5)


@asynccontextmanager
async def upstream(
    directory: Path, script, **options
) -> AsyncIterator[tuple[RawServer, ConnectionPool]]:
    """A scripted server on a Unix socket in ``directory``, and a pool for it."""
    path = directory / "s"
    async with (
        raw_server(path, script) as server,
        ConnectionPool(unix_path=str(path), **options) as pool,
    ):
        yield server, pool


def ok(body: bytes = b"ok", *extra: bytes) -> bytes:
    head = [b"HTTP/1.1 200 OK", b"Content-Length: %d" % len(body), *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def answering(response: Callable[[bytes, bytes], bytes]):
    """A script answering each request on a connection with ``response(head, body)``."""

    async def script(conn: RawConnection) -> None:
        while (request := await conn.read_request()) is not None:
            conn.write(response(*request))

    return script


async def until(predicate: Callable[[], bool]) -> None:
    """Wait for a condition on the pool's state, which has no event to wait on."""
    async with asyncio.timeout(TIMEOUT):
        while not predicate():  # noqa: ASYNC110 (polling is the point here)
            await asyncio.sleep(0.01)


async def get(pool: ConnectionPool, path: str = "/", body: bytes = b"", **kw) -> ClientResponse:
    return await pool.request("POST", path, [], body, timeout=kw.get("timeout", TIMEOUT))


# Against a real instance


def test_sequential_requests_share_one_keep_alive_connection(run, instance_socket):
    async def main():
        async with ConnectionPool(unix_path=instance_socket) as pool:
            for i in range(5):
                body = b'{"n": %d}' % i
                headers = [("Content-Type", "application/json"), ("Accept", "application/json")]
                response = await pool.request("POST", "/invocations", headers, body, timeout=10)
                assert (response.status, response.body) == (200, body)
                assert response.header("content-type") == "application/json"
            assert pool.connection_count == 1

    run(main())


def test_one_mib_bodies_travel_both_ways(run, instance_socket):
    async def main():
        body = bytes(range(256)) * 4096
        headers = [(b"Content-Type", b"application/octet-stream"), (b"Accept", b"*/*")]
        async with ConnectionPool(unix_path=instance_socket) as pool:
            for _ in range(2):
                response = await pool.request("POST", "/invocations", headers, body, timeout=10)
                assert response.status == 200
                assert response.body == body

    run(main())


def test_concurrent_requests_to_instance_all_answer(run, instance_socket):
    async def main():
        headers = [("Content-Type", "application/json")]
        async with ConnectionPool(unix_path=instance_socket, max_connections=4) as pool:
            futures = [
                pool.request("POST", "/invocations", headers, b"[%d]" % i, timeout=10)
                for i in range(50)
            ]
            responses = await asyncio.gather(*futures)
            assert [r.body for r in responses] == [b"[%d]" % i for i in range(50)]
            assert pool.connection_count <= 4

    run(main())


def test_many_request_headers_reach_the_instance(run, instance_socket):
    async def main():
        headers = [(f"X-Extra-{i}", "v" * 50) for i in range(80)]
        headers.append(("Content-Type", "application/json"))
        async with ConnectionPool(unix_path=instance_socket) as pool:
            response = await pool.request("POST", "/invocations", headers, b"[1]", timeout=10)
            assert (response.status, response.body) == (200, b"[1]")

    run(main())


def test_missing_socket_is_a_connect_error(run, short_dir):
    async def main():
        async with ConnectionPool(unix_path=str(short_dir / "absent.sock")) as pool:
            with pytest.raises(UpstreamConnectError, match="cannot connect to unix:"):
                await get(pool)
            assert pool.connection_count == 0

    run(main())


def test_socket_nobody_listens_on_is_a_connect_error(run, short_dir):
    async def main():
        with socket.socket(socket.AF_UNIX) as bound:
            bound.bind(str(short_dir / "deaf.sock"))
            async with ConnectionPool(unix_path=str(short_dir / "deaf.sock")) as pool:
                with pytest.raises(UpstreamConnectError):
                    await get(pool)

    run(main())


# Edge cases, against scripted servers


def test_requests_beyond_max_connections_wait_in_order(run, short_dir):
    async def script(conn: RawConnection) -> None:
        while (request := await conn.read_request()) is not None:
            conn.server.requests.append(request)
            await asyncio.sleep(0.001)
            conn.write(ok(request[1]))

    async def main():
        async with upstream(short_dir, script, max_connections=1) as (server, pool):
            futures = [pool.request("POST", "/", [], b"%d" % i, timeout=10) for i in range(20)]
            responses = await asyncio.gather(*futures)
            assert [r.body for r in responses] == [b"%d" % i for i in range(20)]
            assert [body for _, body in server.requests] == [b"%d" % i for i in range(20)]
            assert server.accepted == 1

    run(main())


def test_concurrency_is_capped_at_max_connections(run, short_dir):
    in_flight = peak = 0

    async def script(conn: RawConnection) -> None:
        nonlocal in_flight, peak
        while (request := await conn.read_request()) is not None:
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.002)
            in_flight -= 1
            conn.write(ok(request[1]))

    async def main():
        async with upstream(short_dir, script, max_connections=3) as (server, pool):
            futures = [pool.request("POST", "/", [], b"%d" % i, timeout=10) for i in range(30)]
            responses = await asyncio.gather(*futures)
            assert [r.body for r in responses] == [b"%d" % i for i in range(30)]
            assert server.accepted == 3
        assert peak == 3

    run(main())


def test_chunked_response_body_is_joined(run, short_dir):
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )

    async def main():
        async with upstream(short_dir, answering(lambda head, body: chunked)) as (server, pool):
            for _ in range(2):
                assert (await get(pool)).body == b"hello world"
            assert server.accepted == 1

    run(main())


def test_connection_close_response_is_not_reused(run, short_dir):
    async def main():
        response = answering(lambda head, body: ok(b"bye", b"Connection: close"))
        async with upstream(short_dir, response) as (server, pool):
            for _ in range(3):
                assert (await get(pool)).body == b"bye"
            assert server.accepted == 3

    run(main())


def test_http_1_0_body_runs_until_the_server_closes(run, short_dir):
    async def script(conn: RawConnection) -> None:
        await conn.read_request()
        conn.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")

    async def main():
        async with upstream(short_dir, script) as (server, pool):
            for _ in range(2):
                response = await get(pool)
                assert (response.status, response.body) == (200, b"all of it")
                assert response.headers == [("content-type", "text/plain")]
            assert server.accepted == 2

    run(main())


def test_responses_without_body_keep_the_connection(run, short_dir):
    def response(head: bytes, body: bytes) -> bytes:
        if head.startswith(b"HEAD"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        status = {b"/204": b"204 No Content", b"/304": b"304 Not Modified"}.get(head.split()[1])
        if status:
            return b"HTTP/1.1 %s\r\nContent-Length: 7\r\n\r\n" % status
        return ok()

    async def main():
        async with upstream(short_dir, answering(response)) as (server, pool):
            head = await pool.request("HEAD", "/", [], b"", timeout=10)
            assert (head.status, head.body, head.header("content-length")) == (200, b"", "1000")
            assert (await get(pool)).body == b"ok"
            assert ((await get(pool, "/204")).status, (await get(pool, "/304")).status) == (
                204,
                304,
            )
            assert (await get(pool)).body == b"ok"
            assert server.accepted == 1

    run(main())


def test_interim_100_continue_is_skipped(run, short_dir):
    continued = b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"final")

    async def main():
        async with upstream(short_dir, answering(lambda head, body: continued)) as (server, pool):
            for _ in range(2):
                response = await get(pool)
                assert (response.status, response.body) == (200, b"final")
            assert server.accepted == 1

    run(main())


def test_idle_connection_closed_by_server_is_replaced(run, short_dir):
    async def script(conn: RawConnection) -> None:
        request = await conn.read_request()
        assert request is not None
        conn.write(ok())  # keep-alive, then close while the client is idle

    async def main():
        async with upstream(short_dir, script) as (server, pool):
            assert (await get(pool)).body == b"ok"
            await until(lambda: pool.connection_count == 0)  # the client saw the close
            assert (await get(pool)).body == b"ok"
            assert server.accepted == 2

    run(main())


def test_stale_connection_closing_on_our_request_is_retried_once(run, short_dir):
    async def script(conn: RawConnection) -> None:
        if conn.server.accepted == 1:
            assert await conn.read_request() is not None
            conn.write(ok(b"first"))
        # The close crosses the client's request on a reused connection: no answer.
        request = await conn.read_request()
        if request is not None and conn.server.accepted > 1:
            conn.write(ok(b"retried"))

    async def main():
        async with upstream(short_dir, script) as (server, pool):
            assert (await get(pool)).body == b"first"
            assert (await get(pool)).body == b"retried"
            assert server.accepted == 2

    run(main())


def test_fresh_connection_closing_without_answer_is_not_retried(run, short_dir):
    async def script(conn: RawConnection) -> None:
        await conn.read_request()

    async def main():
        async with upstream(short_dir, script) as (server, pool):
            with pytest.raises(UpstreamClosed, match="closed the connection before a full"):
                await get(pool)
            assert server.accepted == 1

    run(main())


def test_close_mid_response_is_upstream_closed(run, short_dir):
    async def script(conn: RawConnection) -> None:
        await conn.read_request()
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")

    async def main():
        async with upstream(short_dir, script) as (_, pool):
            with pytest.raises(UpstreamClosed):
                await get(pool)

    run(main())


def test_tcp_reset_mid_response_is_upstream_closed(run):
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        # Linger 0: close sends RST, not FIN.
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with ConnectionPool(host="127.0.0.1", port=port) as pool:
                with pytest.raises(UpstreamClosed, match="before a full response from http://"):
                    await get(pool)
        finally:
            server.close()
            await server.wait_closed()

    run(main())


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"SMTP ready\r\n\r\n", "malformed response"),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n",
            "switched",
        ),
    ],
)
def test_answer_that_is_not_a_response_is_upstream_closed(run, short_dir, answer, message):
    async def main():
        async with upstream(short_dir, answering(lambda head, body: answer)) as (_, pool):
            with pytest.raises(UpstreamClosed, match=message):
                await get(pool)

    run(main())


def test_stale_retry_happens_only_once(run, short_dir):
    async def script(conn: RawConnection) -> None:
        if conn.server.accepted == 1:
            assert await conn.read_request() is not None
            conn.write(ok())
        await conn.read_request()  # then close without an answer, every time

    async def main():
        async with upstream(short_dir, script) as (server, pool):
            await get(pool)
            with pytest.raises(UpstreamClosed):
                await get(pool)
            assert server.accepted == 2

    run(main())


def test_slow_server_times_out_and_its_connection_is_discarded(run, short_dir):
    async def script(conn: RawConnection) -> None:
        while (request := await conn.read_request()) is not None:
            if request[1] == b"slow":
                await conn.reader.read()  # answer nothing; wait for the client to go
                return
            conn.write(ok())

    async def main():
        async with upstream(short_dir, script, max_connections=1) as (server, pool):
            slow = pool.request("POST", "/", [], b"slow", timeout=0.3)
            queued = pool.request("POST", "/", [], b"fast", timeout=0.2)
            with pytest.raises(UpstreamTimeout, match=r"within 0\.3 s"):
                await slow
            with pytest.raises(UpstreamTimeout, match="no free connection"):
                await queued
            assert (await get(pool)).body == b"ok"
            assert server.accepted == 2

    run(main())


def test_large_response_header_set_is_parsed(run, short_dir):
    extra = [b"X-H-%d: %s" % (i, b"v" * 100) for i in range(200)]

    async def main():
        script = answering(lambda head, body: ok(b"x", *extra))
        async with upstream(short_dir, script) as (_, pool):
            headers = [(f"X-Q-{i}", "q" * 100) for i in range(200)]
            response = await pool.request("GET", "/", headers, b"", timeout=10)
            assert len(response.headers) == 201
            assert response.header("x-h-199") == "v" * 100

    run(main())


def test_head_carries_host_and_content_length(run, short_dir):
    async def script(conn: RawConnection) -> None:
        while (request := await conn.read_request()) is not None:
            conn.server.requests.append(request)
            conn.write(ok())

    async def main():
        async with upstream(short_dir, script) as (server, pool):
            await pool.request("GET", "/ping", [(b"Accept", b"*/*")], b"", timeout=10)
            big = b"b" * 100_000
            await pool.request("POST", "/invocations", [("Accept", "x/y")], big, timeout=10)
        assert server.requests[0] == (
            b"GET /ping HTTP/1.1\r\nhost: localhost\r\nAccept: */*\r\ncontent-length: 0\r\n\r\n",
            b"",
        )
        assert server.requests[1][1] == big
        assert b"content-length: 100000\r\n" in server.requests[1][0]

    run(main())


def test_close_fails_in_flight_requests_and_marks_queued_ones_unsent(run, short_dir):
    received = asyncio.Event()

    async def script(conn: RawConnection) -> None:
        await conn.read_request()
        received.set()
        await conn.reader.read()

    async def main():
        async with raw_server(short_dir / "s", script):
            pool = ConnectionPool(unix_path=str(short_dir / "s"), max_connections=1)
            in_flight = pool.request("POST", "/", [], b"", timeout=10)
            queued = pool.request("POST", "/", [], b"", timeout=10)
            await received.wait()
            await pool.close()
            with pytest.raises(UpstreamClosed):
                await in_flight
            # Never sent: safe for the caller to try elsewhere.
            with pytest.raises(UpstreamConnectError, match="before sending"):
                await queued
            with pytest.raises(UpstreamClosed, match="is closed"):
                await get(pool)
            assert pool.connection_count == 0

    run(main())


def test_idle_connections_expire(run, short_dir):
    async def main():
        script = answering(lambda head, body: ok())
        async with upstream(short_dir, script, idle_timeout=0.1) as (server, pool):
            await get(pool)
            assert pool.connection_count == 1
            await until(lambda: pool.connection_count == 0)
            await get(pool)
            assert server.accepted == 2

    run(main())


def test_cancelled_request_frees_its_connection(run, short_dir):
    hung = asyncio.Event()

    async def script(conn: RawConnection) -> None:
        while (request := await conn.read_request()) is not None:
            if request[1] == b"hang":
                hung.set()
                await conn.reader.read()
                return
            conn.write(ok())

    async def main():
        async with upstream(short_dir, script, max_connections=1) as (server, pool):
            hanging = pool.request("POST", "/", [], b"hang", timeout=10)
            await hung.wait()
            hanging.cancel()
            assert (await get(pool)).body == b"ok"
            assert server.accepted == 2

    run(main())
