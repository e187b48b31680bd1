"""A local S3 endpoint for the benchmarks: moto's server in its own process, on loopback.

Every S3 call the measured code makes goes over HTTP to it, as it would to AWS, so the
timings include boto3's request path (not AWS's network, which no benchmark here sees).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any
from urllib.parse import quote_plus

from chalicelib.s3_get import Credentials, S3Reader

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """moto's S3 server as a context manager; `url` is its endpoint."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> MotoServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=1).close()
                return self
            except urllib.error.HTTPError:
                return self
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.__exit__(None, None, None)
                    raise RuntimeError(f"moto server on {self.url} did not start") from None
                time.sleep(0.1)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def client(self) -> Any:
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
        credentials = Credentials(DUMMY_AWS_ENV["AWS_ACCESS_KEY_ID"], DUMMY_AWS_ENV["AWS_SECRET_ACCESS_KEY"])
        return S3Reader(DUMMY_AWS_ENV["AWS_DEFAULT_REGION"], credentials, endpoint=self.url)

    def child_env(self, base: dict[str, str]) -> dict[str, str]:
        """`base` plus what a child process needs to reach this endpoint and no real account."""
        env = {k: v for k, v in base.items() if not k.startswith("AWS_")}
        return env | DUMMY_AWS_ENV | {"AWS_ENDPOINT_URL_S3": self.url}


def s3_put_event(bucket: str, key: str, size: int) -> dict[str, Any]:
    """The notification S3 sends to Lambda for one uploaded object (keys arrive URL-encoded)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": DUMMY_AWS_ENV["AWS_DEFAULT_REGION"],
                "eventTime": "2026-01-01T00:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "bench",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": size, "sequencer": "0"},
                },
            }
        ]
    }
