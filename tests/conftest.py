"""Shared fixtures: a trained model version, the lab records, and a real S3 endpoint.

The S3 endpoint is moto's server in its own process, reached by boto3 over HTTP, so the
code under test takes exactly the path it takes against AWS.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from testkit import lab, models
from testkit.moto import DUMMY_AWS_ENV, MotoServer
from testkit.ports import free_port, wait_for_http

pytest_plugins = ["tests.s3_audit"]

ROOT = Path(__file__).resolve().parent.parent


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
    return lab.lab_records()


@pytest.fixture(scope="session")
def synthetic_csvs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return models.synthetic_csvs(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def splits(synthetic_csvs: tuple[Path, Path]):
    return models.load_splits(*synthetic_csvs)[1]


@pytest.fixture(scope="session")
def artifacts_dir(splits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete local artifact root with one trained version and LATEST."""
    out = tmp_path_factory.mktemp("artifacts")
    models.train_version(splits, out)
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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    """moto's server for the session; boto3 clients the code makes itself get dummy credentials."""
    for name, value in DUMMY_AWS_ENV.items():
        os.environ.setdefault(name, value)
    with MotoServer() as server:
        yield server


@pytest.fixture
def s3(s3_server: MotoServer):
    """A client of the running server; restarts the server if a test left it stopped."""
    s3_server.start()
    return s3_server.client()


@pytest.fixture
def bucket(s3) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@contextmanager
def serve_project(
    project: Path, artifacts_dir: Path, process_env: Mapping[str, str] | None = None, **environment: str
) -> Iterator[str]:
    """`chalice local` on a free port, serving a copy of the project in `project` with these artifacts.

    `environment` overrides the local stage's environment variables (CORS_ALLOW_ORIGIN, ...);
    `process_env` is the server process's own environment (say, the moto server's endpoint).
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
        env=process_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/health", timeout=60, process=process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def server(artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`chalice local` on a free port, serving a copy of the project with the test artifacts."""
    with serve_project(tmp_path_factory.mktemp("project"), artifacts_dir) as url:
        yield url


@pytest.fixture
def cold_app(monkeypatch):
    """The app as a fresh Lambda container sees it: no model loaded yet."""
    import app as app_module
    from chalicelib.predictor import LazyPredictor

    monkeypatch.setattr(app_module, "model", LazyPredictor.from_environment())
    return app_module.app


@pytest.fixture
def client(cold_app, artifacts_dir: Path, tmp_path: Path):
    """Chalice's test client of a cold app whose local stage serves the test artifacts."""
    from chalice.test import Client

    with Client(
        cold_app, stage_name="local", project_dir=str(local_project(tmp_path, ARTIFACTS_URI=str(artifacts_dir)))
    ) as c:
        yield c
