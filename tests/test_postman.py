"""The Postman collection in postman/, run by newman (npm) against `chalice local`.

The collection's request bodies are the files in examples/ (checked here, so they cannot
drift), and its tests check status, fields, the CORS header and the error shape. A second
run with the wrong expected origin must fail exactly the CORS checks: the tests can fail.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.browser import require
from tests.conftest import ROOT

COLLECTION = ROOT / "postman" / "house-prices.postman_collection.json"
LOCAL_ENV = ROOT / "postman" / "local.postman_environment.json"
DEPLOYED_ENV = ROOT / "postman" / "deployed.postman_environment.json"
BODIES = {
    "Predict: the five lab records": "lab_request.json",
    "Predict: one raw record": "raw_record.json",
    "Predict: a bad record is a 400 naming each problem": "bad_record.json",
}


def newman(base_url: str, out: Path, *overrides: str) -> tuple[int, dict[str, Any]]:
    """Exit code and newman's JSON report of one run of the collection."""
    binary = ROOT / "node_modules" / ".bin" / "newman"
    require("newman", str(binary) if binary.exists() else None, "npm ci (.ci/run does)")
    args = [str(binary), "run", str(COLLECTION), "-e", str(LOCAL_ENV), "--env-var", f"baseUrl={base_url}"]
    for override in overrides:
        args += ["--env-var", override]
    args += ["--reporters", "json", "--reporter-json-export", str(out), "--timeout-request", "30000"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, json.loads(out.read_text())["run"]


def failed_assertions(run: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["source"]["name"], f["error"]["test"]) for f in run["failures"]]


def test_collection_sends_the_example_bodies() -> None:
    items = {item["name"]: item for item in json.loads(COLLECTION.read_text())["item"]}
    for name, file in BODIES.items():
        sent = json.loads(items[name]["request"]["body"]["raw"])
        assert sent == json.loads((ROOT / "examples" / file).read_text()), f"{name} no longer sends examples/{file}"


def test_environments_define_every_variable_the_collection_uses() -> None:
    text = COLLECTION.read_text().replace('\\"', '"')  # the scripts, unescaped
    used = set(re.findall(r"\{\{(\w+)\}\}", text)) | set(re.findall(r'environment\.get\("(\w+)"\)', text))
    for env_file in (LOCAL_ENV, DEPLOYED_ENV):
        assert {v["key"] for v in json.loads(env_file.read_text())["values"]} == used, env_file.name


def test_collection_passes_against_chalice_local(server: str, tmp_path: Path) -> None:
    code, run = newman(server, tmp_path / "report.json")
    assert failed_assertions(run) == [] and code == 0
    assert run["stats"]["requests"] == {"total": 6, "pending": 0, "failed": 0}
    assert run["stats"]["assertions"]["total"] >= 25


def test_collection_fails_when_the_api_allows_another_origin(server: str, tmp_path: Path) -> None:
    code, run = newman(server, tmp_path / "report.json", "allowOrigin=https://only-this.example")
    assert code != 0
    failed = failed_assertions(run)
    assert len(failed) == 6 and {test for _, test in failed} == {"CORS: allows the expected origin"}


@pytest.mark.parametrize("env_file", [LOCAL_ENV, DEPLOYED_ENV], ids=["local", "deployed"])
def test_expected_origin_matches_the_stage(env_file: Path) -> None:
    values = {v["key"]: v["value"] for v in json.loads(env_file.read_text())["values"]}
    stage = "local" if env_file == LOCAL_ENV else "prod"
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert values["allowOrigin"] == config["stages"][stage]["environment_variables"]["CORS_ALLOW_ORIGIN"]
