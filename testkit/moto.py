"""moto's S3 server in its own process on loopback: the S3 endpoint of tests and benchmarks.

The code under test reaches it with boto3 over HTTP, exactly the path it takes to AWS.
Credentials are dummies, so nothing here can touch a real account.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING

from testkit.ports import free_port, wait_for_http

if TYPE_CHECKING:
    from botocore.client import BaseClient

    from chalicelib.s3_get import S3Reader

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MotoServer:
    """A moto server that can be stopped and started again on the same port (an S3 outage).

    Use as a context manager, or call start()/stop() yourself.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the server (a no-op if it runs) and wait until it answers."""
        if self.running:
            return
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_http(self.url, process=self.process)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server; what it stored is gone."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def client(self) -> BaseClient:
        """A boto3 S3 client of this endpoint (dummy credentials)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=DUMMY_AWS_ENV["AWS_DEFAULT_REGION"],
            aws_access_key_id=DUMMY_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )

    def reader(self) -> S3Reader:
        """The service's own S3 reader of this endpoint (dummy credentials)."""
        from chalicelib.s3_get import Credentials, S3Reader

        credentials = Credentials(DUMMY_AWS_ENV["AWS_ACCESS_KEY_ID"], DUMMY_AWS_ENV["AWS_SECRET_ACCESS_KEY"])
        return S3Reader(DUMMY_AWS_ENV["AWS_DEFAULT_REGION"], credentials, endpoint=self.url)

    def child_env(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` plus what a child process needs to reach this endpoint and no real account."""
        env = {k: v for k, v in base.items() if not k.startswith("AWS_")}
        return env | DUMMY_AWS_ENV | {"AWS_ENDPOINT_URL_S3": self.url}
