"""Shared fixtures: a trained model version, the lab records, and a real S3 endpoint.

The S3 endpoint is moto's server in its own process, reached by boto3 over HTTP, so the
code under test takes exactly the path it takes against AWS.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests

from training.data import generate_synthetic, load_housets, split_by_date
from training.train import train, write_version

pytest_plugins = ["tests.s3_audit"]

ROOT = Path(__file__).resolve().parent.parent
LAB_REQUEST = ROOT / "examples" / "lab_request.json"
TEST_ZIPCODES = 120
TEST_ROUNDS = 150


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


@pytest.fixture
def logged():
    """The JSON log lines the service writes while the test runs."""
    lines: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(record.getMessage()))

    handler = Collect()
    logger = logging.getLogger("house_prices")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


@pytest.fixture(scope="session")
def lab_records() -> list[dict]:
    return json.loads(LAB_REQUEST.read_text())["records"]


@pytest.fixture(scope="session")
def synthetic_csvs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_synthetic(tmp_path_factory.mktemp("data"), TEST_ZIPCODES)


@pytest.fixture(scope="session")
def splits(synthetic_csvs: tuple[Path, Path]):
    return split_by_date(*load_housets(*synthetic_csvs))


@pytest.fixture(scope="session")
def artifacts_dir(splits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete local artifact root with one trained version and LATEST."""
    out = tmp_path_factory.mktemp("artifacts")
    write_version(train(splits, TEST_ROUNDS, log_every=0), splits, out)
    return out


def local_project(tmp_path: Path, **environment: str) -> Path:
    """A copy of the project whose `local` stage has these environment variables.

    Chalice's test client replaces the environment with the stage's during each call,
    so a test points the app at its own artifacts and buckets through the config itself.
    """
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    config["stages"]["local"]["environment_variables"] |= environment
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    shutil.copy(ROOT / "app.py", tmp_path / "app.py")
    return tmp_path


@dataclass
class S3Server:
    """A moto S3 server process that tests may stop and start again on the same port."""

    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_http(self.url)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def client(self):
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(name, value)
    server = S3Server(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server: S3Server):
    """A client of the running server; restarts the server if a test left it stopped."""
    if s3_server.process is None:
        s3_server.start()
    return s3_server.client()


@pytest.fixture
def bucket(s3) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@contextmanager
def serve_project(project: Path, artifacts_dir: Path, **environment: str) -> Iterator[str]:
    """`chalice local` on a free port, serving a copy of the project in `project` with these artifacts.

    `environment` overrides the local stage's environment variables (CORS_ALLOW_ORIGIN, ...).
    """
    shutil.copy(ROOT / "app.py", project / "app.py")
    shutil.copytree(ROOT / "chalicelib", project / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / ".chalice", project / ".chalice", ignore=shutil.ignore_patterns("deployments"))
    if environment:
        config = json.loads((project / ".chalice" / "config.json").read_text())
        config["stages"]["local"]["environment_variables"] |= environment
        (project / ".chalice" / "config.json").write_text(json.dumps(config))
    (project / "artifacts").symlink_to(artifacts_dir)
    port = free_port()
    chalice = Path(sys.executable).with_name("chalice")
    process = subprocess.Popen(
        [str(chalice), "local", "--stage", "local", "--no-autoreload", "--host", "127.0.0.1", "--port", str(port)],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/health", timeout=60)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def server(artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`chalice local` on a free port, serving a copy of the project with the test artifacts."""
    with serve_project(tmp_path_factory.mktemp("project"), artifacts_dir) as url:
        yield url
