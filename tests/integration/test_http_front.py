"""The instance's HTTP/1.1 front under what real clients do, over raw sockets."""

import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.fixtures.builders import model_dir
from tests.integration.instance import running_instance


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("front")
    env = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1"}
    with running_instance(model_dir("identity", tmp / "m"), tmp, env=env) as running:
        yield running


@pytest.fixture
def conn(instance):
    address = urlsplit(instance.url)
    sock = socket.create_connection((address.hostname, address.port), timeout=10)
    yield sock
    sock.close()


def post(body: bytes, *extra: str) -> bytes:
    head = [
        "POST /invocations HTTP/1.1",
        "Host: x",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    buffer, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {len(answers)} answers: {buffer!r}")
            buffer += chunk
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", 0))
        while len(buffer) < length:
            buffer += sock.recv(65536)
        answers.append((status, headers, buffer[:length]))
        buffer = buffer[length:]
    return answers


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_keep_alive_serves_many_requests_on_one_connection(conn):
    for i in range(5):
        conn.sendall(post(b'{"n": %d}' % i))
        [(status, _, body)] = read_responses(conn, 1)
        assert (status, body) == (200, b'{"n": %d}' % i)


def test_pipelined_requests_are_answered_in_order(conn):
    conn.sendall(b"".join(post(b"[%d]" % i) for i in range(10)))
    answers = read_responses(conn, 10)
    assert [body for _, _, body in answers] == [b"[%d]" % i for i in range(10)]


def test_chunked_body(conn):
    head = "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    conn.sendall(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n")
    conn.sendall(b"4\r\n[1, \r\n")
    conn.sendall(b"2\r\n2]\r\n0\r\n\r\n")
    [(status, _, body)] = read_responses(conn, 1)
    assert (status, body) == (200, b"[1, 2]")


def test_expect_continue(conn):
    conn.sendall(
        post(b"", "Expect: 100-continue").replace(b"Content-Length: 0", b"Content-Length: 3")
    )
    assert conn.recv(64).startswith(b"HTTP/1.1 100 Continue")
    conn.sendall(b"[7]")
    [(status, _, body)] = read_responses(conn, 1)
    assert (status, body) == (200, b"[7]")


def large(n: int, size: int) -> bytes:
    """A JSON body of exactly ``size`` bytes, different for each ``n``."""
    head = b'{"n": %d, "pad": "' % n
    return head + b"x" * (size - len(head) - 2) + b'"}'


@pytest.mark.parametrize("size", [64 * 1024 + 1, 300_000, 6 * 1024 * 1024])
def test_large_bodies_pipelined_with_small_ones(conn, size):
    """Large bodies are read apart from the parser: what follows one is the next request."""
    bodies = [large(1, size), b"[2]", large(3, size), large(4, size), b"[5]"]
    conn.sendall(b"".join(post(body) for body in bodies))
    answers = read_responses(conn, len(bodies))
    assert [(status, body) for status, _, body in answers] == [(200, b) for b in bodies]


def test_large_body_in_slow_pieces(conn):
    body = large(7, 200_000)
    request = post(body)
    for start in range(0, len(request), 50_000):
        conn.sendall(request[start : start + 50_000])
        time.sleep(0.02)
    [(status, _, answer)] = read_responses(conn, 1)
    assert (status, answer) == (200, body)


def test_large_body_after_expect_continue(conn):
    body = large(8, 100_000)
    conn.sendall(post(body, "Expect: 100-continue")[: -len(body)])
    assert conn.recv(64).startswith(b"HTTP/1.1 100 Continue")
    conn.sendall(body)
    [(status, _, answer)] = read_responses(conn, 1)
    assert (status, answer) == (200, body)


def test_large_body_cut_short_then_a_new_connection(instance, conn):
    """A client gone mid-body gives its buffer back; the next large requests still work."""
    conn.sendall(post(large(9, 500_000))[:200_000])
    conn.close()
    for n in range(20):
        body = large(n, 500_000)
        assert instance.invoke(body).data == body


def test_connection_close_is_honoured(conn):
    conn.sendall(post(b"[1]", "Connection: close"))
    [(status, headers, _)] = read_responses(conn, 1)
    assert status == 200
    assert headers["connection"] == "close"
    assert closed(conn)


def test_http_1_0_closes_after_answer(conn):
    conn.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
    [(status, _, _)] = read_responses(conn, 1)
    assert status == 200
    assert closed(conn)


def test_oversized_declared_body_is_413_without_reading_it(conn):
    conn.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 7000000\r\n\r\n")
    [(status, _, body)] = read_responses(conn, 1)
    assert status == 413
    assert b"6291456" in body
    assert closed(conn)


def test_oversized_chunked_body_is_413(conn):
    conn.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 1_048_576
    try:
        for _ in range(7):
            conn.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    [(status, _, _)] = read_responses(conn, 1)
    assert status == 413


def test_huge_headers_are_431(conn):
    conn.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    [(status, _, _)] = read_responses(conn, 1)
    assert status == 431


def test_malformed_request_is_400(conn):
    conn.sendall(b"THIS IS NOT HTTP\r\n\r\n")
    [(status, _, _)] = read_responses(conn, 1)
    assert status == 400
    assert closed(conn)


def test_slow_client_gets_408_mid_large_body(conn):
    conn.sendall(post(large(1, 100_000))[:70_000])
    [(status, _, _)] = read_responses(conn, 1)
    assert status == 408


def test_slow_client_gets_408(conn):
    conn.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n[1")
    started = time.monotonic()
    [(status, _, _)] = read_responses(conn, 1)
    assert status == 408
    assert time.monotonic() - started < 10


def test_server_survives_abrupt_disconnects(instance, conn):
    conn.sendall(post(b"[1]")[:-2])
    conn.close()
    assert instance.invoke(b"[1]").status == 200
