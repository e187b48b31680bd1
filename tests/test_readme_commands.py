"""Every README command that needs no AWS account works in a fresh clone, as a new user runs it.

The repository's committed HEAD is cloned into a temporary folder and the commands run there
in the README's order; each must appear in README.md word for word (`localhost:8000` becomes a
free port, as two runs cannot share one). `make run` sets up, trains and serves, so it covers
`make install` and `make train`. Not run here, and why:

- `make test`: that is this suite; the test would run itself.
- `make layers`, `make smoke`: minutes of platform-wheel downloads; tests/test_layers.py runs them.
- `make bench`: a measurement, not a check; tests/test_bench.py runs it at small sizes.
- `python -m training.train --data HouseTS.csv ...`: needs the Kaggle download.
- The rest of "Deploy to AWS": needs an account (`make package` and the policy check do not, and run).

About two minutes on a quiet machine, most of it `make install` and training (`-m "not readme"`
leaves it out of a local run; CI runs it).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.browser import chromium_path, require
from tests.conftest import ROOT, free_port, wait_for_http

pytestmark = pytest.mark.readme

README = (ROOT / "README.md").read_text()
MAKE_RUN = "make run"
CURL_LAB = (
    "curl -s -X POST localhost:8000/predict_price -H 'Content-Type: application/json' -d @examples/lab_request.json"
)
CURL_RAW = (
    "curl -s -X POST localhost:8000/predict_price -H 'Content-Type: application/json' -d @examples/raw_record.json"
)
CURL_BAD = (
    "curl -s -X POST localhost:8000/predict_price -H 'Content-Type: application/json' -d @examples/bad_record.json"
)
CURL_EXPLAIN = (
    "curl -s -X POST localhost:8000/predict_price -H 'Content-Type: application/json' -d @examples/explain_request.json"
)
PAGE = "http://localhost:8000/"
POSTMAN = "make postman"
BATCH = "make batch IN=examples/houses.csv OUT=houses.predictions.csv"
EXAMPLES = "make examples"
POLICY = ".venv/bin/python -m deploy.policy --all"
POLICY_DIFF = "git diff .chalice/"
PACKAGE = "make package"
LINT = "make lint"
SCREENSHOT = "make screenshot"
COMMANDS = [
    MAKE_RUN,
    CURL_LAB,
    CURL_RAW,
    CURL_BAD,
    CURL_EXPLAIN,
    PAGE,
    POSTMAN,
    BATCH,
    EXAMPLES,
    POLICY,
    POLICY_DIFF,
    PACKAGE,
]
COMMANDS += [LINT, SCREENSHOT]


def test_every_command_run_here_is_in_the_readme() -> None:
    missing = [command for command in COMMANDS if command not in README]
    assert missing == [], "the README no longer shows these; update the test with it"


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fresh") / "house-prices"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder)], check=True, timeout=120)
    return folder


def run(clone: Path, command: str, port: int | None = None, timeout: float = 600) -> str:
    """Run a README command in the clone through a shell; fail with its output if it fails."""
    if port is not None:
        command = command.replace("localhost:8000", f"localhost:{port}")
    done = subprocess.run(
        ["bash", "-c", command], cwd=clone, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-8000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def running(clone: Path) -> Iterator[int]:
    """`make run` in the background, as the README's first line says; its port."""
    port = free_port()
    log = (clone.parent / "make-run.log").open("w")
    process = subprocess.Popen(
        ["bash", "-c", f"{MAKE_RUN} PORT={port}"],
        cwd=clone,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", timeout=600)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def test_the_first_example_commands_answer_as_documented(clone: Path, running: int) -> None:
    lab = json.loads(run(clone, CURL_LAB, running))
    assert lab["count"] == 5 and len(lab["actuals"]) == 5
    raw = json.loads(run(clone, CURL_RAW, running))
    assert raw["count"] == 1 and raw["predictions"][0] > 0
    bad = json.loads(run(clone, CURL_BAD, running))
    assert bad == json.loads((clone / "examples" / "bad_record.400.json").read_text())  # the default model's
    explained = json.loads(run(clone, CURL_EXPLAIN, running))
    assert explained["level"] == 0.95 and len(explained["explanations"]) == 1
    assert explained["lower"][0] <= explained["predictions"][0] <= explained["upper"][0]
    page = requests.get(PAGE.replace("localhost:8000", f"127.0.0.1:{running}"), timeout=10)
    assert page.status_code == 200 and "<title>House price estimate</title>" in page.text


def test_make_postman_against_make_run(clone: Path, running: int) -> None:
    require("npm", shutil.which("npm"), "Node 20 with npm")
    run(clone, f"{POSTMAN} PORT={running}")


def test_make_batch_scores_the_example_csv(clone: Path, running: int) -> None:
    run(clone, BATCH)
    with (clone / "houses.predictions.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [bool(r["predicted_price"]) for r in rows] == [True, True, True, True, False]
    assert rows[-1]["error"] == "median_dom: missing"


def test_generated_files_in_the_clone_are_up_to_date(clone: Path, running: int) -> None:
    run(clone, EXAMPLES)
    run(clone, POLICY)
    assert run(clone, POLICY_DIFF) == ""
    assert run(clone, "git status --porcelain --untracked-files=no") == ""


def test_make_package_and_make_lint(clone: Path, running: int) -> None:
    run(clone, PACKAGE)
    assert (clone / "build" / "package-prod" / "chalice.tf.json").is_file()
    run(clone, LINT)


def test_make_screenshot(clone: Path, running: int) -> None:
    require("chromium", chromium_path(), "apt-get install -y chromium (.ci/run does)")
    run(clone, SCREENSHOT)
    assert (clone / "docs" / "page.png").stat().st_size < 150_000
