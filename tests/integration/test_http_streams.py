"""Streamed bodies on the HTTP server (chunked answers) and client (bodies as they arrive),
on both event loops the server may use."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvloop

from moorage.http import ConnectionPool, HttpServer, Limits, Request, Response, UpstreamClosed

TIMEOUT = 10.0


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request) -> Callable[[Awaitable[object]], object]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def run(main):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)

    return run


class Streams:
    """A handler: /stream answers the pieces of the body's words, one by one; /hold sends one
    piece then waits until the client is gone; anything else answers whole."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    def handle(self, request: Request) -> Response:
        if request.path == "/stream":
            return Response(200, stream=self._words(request.body.split()))
        if request.path == "/hold":
            return Response(200, stream=self._hold())
        return Response(200, b"whole:" + request.body)

    @staticmethod
    async def _words(words: list[bytes]) -> AsyncIterator[bytes]:
        for word in words:
            await asyncio.sleep(0)
            yield word

    async def _hold(self) -> AsyncIterator[bytes]:
        try:
            yield b"first"
            await asyncio.Event().wait()
        finally:
            self.closed.set()


async def serving(streams: Streams) -> tuple[HttpServer, int]:
    server = HttpServer(streams.handle, Limits())
    _, port = await server.listen_tcp("127.0.0.1", 0)
    return server, port


def test_a_streamed_body_arrives_in_its_pieces_and_the_connection_is_reused(run):
    async def main():
        server, port = await serving(Streams())
        async with ConnectionPool(host="127.0.0.1", port=port) as pool:
            answer = await pool.request(
                "POST", "/stream", [], b"a bb ccc", timeout=TIMEOUT, stream=True
            )
            assert answer.status == 200
            assert answer.header("transfer-encoding") == "chunked"
            assert answer.stream is not None
            assert b"".join([piece async for piece in answer.stream]) == b"abbccc"
            plain = await pool.request("POST", "/plain", [], b"x", timeout=TIMEOUT)
            assert plain.body == b"whole:x"
            assert pool.connection_count == 1
        await server.close()

    run(main())


def test_pipelined_requests_wait_for_a_streamed_answer(run):
    async def main():
        server, port = await serving(Streams())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /stream HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\none 2"
            b"POST /plain HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\ny"
        )
        expected = (
            b"transfer-encoding: chunked\r\n\r\n3\r\none\r\n1\r\n2\r\n0\r\n\r\n"
            b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nwhole:y"
        )
        received = b""
        while not received.endswith(b"whole:y"):
            received += await asyncio.wait_for(reader.read(65536), TIMEOUT)
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")
        assert received.endswith(expected)
        writer.close()
        await server.close()

    run(main())


def test_a_client_gone_mid_stream_closes_the_stream(run):
    async def main():
        streams = Streams()
        server, port = await serving(streams)
        async with ConnectionPool(host="127.0.0.1", port=port) as pool:
            answer = await pool.request("POST", "/hold", [], b"", timeout=TIMEOUT, stream=True)
            assert answer.stream is not None
            pieces = aiter(answer.stream)
            assert await anext(pieces) == b"first"
            answer.stream.close()  # the client gives up on the rest
            await asyncio.wait_for(streams.closed.wait(), TIMEOUT)
            with pytest.raises(StopAsyncIteration):
                await anext(pieces)
        await server.close()

    run(main())


def test_a_stream_cut_by_the_server_is_an_error_for_the_reader(run):
    async def main():
        async def handle(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\npart\r\n")
            await writer.drain()
            writer.close()

        raw = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = raw.sockets[0].getsockname()[1]
        async with ConnectionPool(host="127.0.0.1", port=port) as pool:
            answer = await pool.request("GET", "/", [], b"", timeout=TIMEOUT, stream=True)
            assert answer.stream is not None
            pieces = aiter(answer.stream)
            assert await anext(pieces) == b"part"
            with pytest.raises(UpstreamClosed):
                await anext(pieces)
        raw.close()
        await raw.wait_closed()

    run(main())
