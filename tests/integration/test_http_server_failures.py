"""A handler that fails: the HTTP server answers 500 through the application's error renderer
(SageMaker's error shape, in moorage), on both paths a handler answers by."""

import asyncio
import json

from moorage.http import ConnectionPool, HttpServer, Limits, Request, Response

TIMEOUT = 10.0


def failing(request: Request) -> "Response | asyncio.Future[Response]":
    if request.path == "/raises":
        raise RuntimeError("a bug")
    later: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    later.set_exception(RuntimeError("a bug, later"))
    return later


def rendered(status: int, message: str) -> Response:
    return Response.json(
        status, json.dumps({"__type": "InternalFailure", "message": message}).encode()
    )


def test_a_failing_handler_gets_the_applications_500():
    async def main():
        server = HttpServer(failing, Limits(), rendered)
        _, port = await server.listen_tcp("127.0.0.1", 0)
        async with ConnectionPool(host="127.0.0.1", port=port) as pool:
            for path in ("/raises", "/fails-later"):
                answer = await pool.request("POST", path, [], b"x", timeout=TIMEOUT)
                assert answer.status == 500
                assert json.loads(answer.body)["__type"] == "InternalFailure"
        await server.close()

    asyncio.run(main())
