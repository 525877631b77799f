"""Start real instance processes (``python -m moorage.runtime``) and talk HTTP to them."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import urllib3


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@dataclass
class Instance:
    process: subprocess.Popen[str]
    url: str
    output: list[str] = field(default_factory=list)
    http: urllib3.PoolManager = field(default_factory=lambda: urllib3.PoolManager(retries=False))

    def request(self, method: str, path: str, body: bytes | None = None, headers=None, **kw):
        return self.http.request(
            method, self.url + path, body=body, headers=headers or {}, timeout=30, **kw
        )

    def invoke(self, body: bytes, content_type: str | None = "application/json", **headers):
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.request("POST", "/invocations", body, headers)

    def ping_status(self) -> int:
        return self.request("GET", "/ping").status

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_until(lambda: self.ping_status() == 200, timeout)

    def log_text(self) -> str:
        return "".join(self.output)


def pump_output(stream, sink: list[str], ready: threading.Event, found: list[str]) -> None:
    """Collect a process's output; ``found`` gets the address from its "listening on" line."""
    for line in stream:
        sink.append(line)
        if not ready.is_set() and "listening on" in line:
            found.append(line.rsplit(" ", 1)[-1].strip())
            ready.set()
    ready.set()


@dataclass
class Listening:
    process: subprocess.Popen[str]
    url: str
    output: list[str]


@contextmanager
def listening_process(
    command: list[str], env: dict[str, str], *, stop_wait: float
) -> Iterator[Listening]:
    """Start ``command`` in its own session, wait for its "listening on URL" line, and on exit
    SIGTERM it, then SIGKILL its whole group if it is still there after ``stop_wait`` s."""
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    ready, found = threading.Event(), []
    pump = threading.Thread(
        target=pump_output, args=(process.stdout, output, ready, found), daemon=True
    )
    pump.start()
    try:
        if not ready.wait(30) or not found:
            raise AssertionError(f"{command[2:4]} did not start:\n" + "".join(output))
        yield Listening(process, found[0], output)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(stop_wait)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        pump.join(5)
        process.stdout.close()


@contextmanager
def running_instance(
    path: str | Path | None,
    tmp_path: Path,
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    wait_ready: bool = True,
) -> Iterator[Instance]:
    command = [sys.executable, "-m", "moorage.runtime"]
    if path is not None:
        command.append(str(path))
    command += ["--port", "0", "--cache-dir", str(tmp_path / "cache"), *args]
    full_env = {**os.environ, "SAGEMAKER_MODEL_SERVER_WORKERS": "1", **(env or {})}
    with listening_process(command, full_env, stop_wait=15) as started:
        instance = Instance(started.process, started.url, started.output)
        if wait_ready:
            instance.wait_ready()
        yield instance


def send_to_slow_reader(url: str, path: str, body: bytes) -> socket.socket:
    """POST ``body`` from a socket with a small receive buffer, and leave the answer unread."""
    address = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect((address.hostname, address.port))
    head = f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: application/json\r\n"
    sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return sock


def read_answer(sock: socket.socket, length: int) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received or len(received.split(b"\r\n\r\n")[1]) < length:
        chunk = sock.recv(1 << 20)
        assert chunk
        received += chunk
    return received.split(b"\r\n\r\n", 1)[1]
