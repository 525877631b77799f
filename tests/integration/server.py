"""Start a real ``moorage server`` subprocess and talk to it with boto3, as a user does."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config

from tests.integration.instance import listening_process

REGION = "us-east-1"
# Any credentials work against a server bound to loopback with no keys configured.
CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
FAST_WAITER = {"Delay": 0.2, "MaxAttempts": 600}


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    data_dir: Path
    output: list[str] = field(default_factory=list)

    def client(
        self,
        service: str = "sagemaker",
        *,
        credentials: dict[str, str] = CREDENTIALS,
        region: str = REGION,
        **config,
    ):
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            config=Config(retries={"max_attempts": 0, "mode": "standard"}, **config),
            **credentials,
        )

    def log_text(self) -> str:
        return "".join(self.output)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no cleanup runs."""
        self.process.kill()
        self.process.wait()


@contextmanager
def running_server(
    data_dir: Path, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[Server]:
    command = [sys.executable, "-m", "moorage", "server", "--port", "0", "--data-dir"]
    env = {**os.environ, **(env or {})}
    with listening_process([*command, str(data_dir), *args], env, stop_wait=40) as started:
        yield Server(started.process, started.url, data_dir, started.output)
