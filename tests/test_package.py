"""`chalice package` for prod: what would be deployed is what config.json and the policies say.

Why: Chalice merges stage and per-function settings itself; a misplaced key is silently
ignored (a function gets the default 60 s, no layers, or the auto-generated policy on
`Resource: "*"`). Packaging is offline (Terraform output needs no credentials), so CI
checks the real deployment description. Runs in a copy: no build output in the repo.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from deploy import bytecode, policy, publish_layers, specs
from deploy.layers import build_function_zip

ROOT = Path(__file__).resolve().parent.parent
STAGE = "prod"
CONFIG = policy.read_config()
FUNCTIONS = CONFIG["stages"][STAGE]["lambda_functions"]
ENV = policy.stage_env(CONFIG, STAGE)
MAX_FUNCTION_ZIP = 1024 * 1024


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make package` does, in a copy of the project (testkit/ included, as in the repo)."""
    project = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "app.py", project)
    shutil.copy(ROOT / "requirements.txt", project)
    shutil.copytree(ROOT / "chalicelib", project / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "testkit", project / "testkit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "vendor", project / "vendor")
    (project / ".chalice").mkdir()
    for path in [ROOT / ".chalice" / "config.json", *(ROOT / ".chalice").glob("policy-*.json")]:
        shutil.copy(path, project / ".chalice")
    out = project / "out"
    chalice = Path(sys.executable).parent / "chalice"
    env = {"AWS_DEFAULT_REGION": "us-east-1", "PATH": str(Path(sys.executable).parent), "PYTHONDONTWRITEBYTECODE": "1"}
    steps = [
        ([sys.executable, "-m", "deploy.bytecode", "--prepare", str(project)], ROOT),
        ([str(chalice), "package", "--stage", STAGE, "--pkg-format", "terraform", str(out)], project),
    ]
    for cmd, cwd in steps:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Reusing existing deployment package" in proc.stdout + proc.stderr  # the prepared zip, pycs and all
    return out


@pytest.fixture(scope="module")
def terraform(package: Path) -> dict[str, Any]:
    return json.loads((package / "chalice.tf.json").read_text())


@pytest.fixture(scope="module")
def swagger(terraform: dict[str, Any]) -> dict[str, Any]:
    return json.loads(terraform["locals"]["chalice_api_swagger"])


def test_three_functions_sized_and_layered_as_configured(terraform: dict[str, Any]) -> None:
    functions = terraform["resource"]["aws_lambda_function"]
    assert set(functions) == {"api_handler", "score_uploaded_csv", "fanout_task"}
    for name, function in functions.items():
        settings = FUNCTIONS[name]
        assert function["runtime"] == "python3.12"
        assert function["architectures"] == ["x86_64"]
        assert function["memory_size"] == settings["lambda_memory_size"]
        assert function["timeout"] == settings["lambda_timeout"]
        assert function["layers"] == settings["layers"]
        assert function["environment"]["variables"] == ENV
        assert function["tags"]["project"] == "house-prices"
        assert function["tags"]["stage"] == STAGE
        # X-Ray active tracing (`"xray": true` in the stage); its role may send the traces.
        assert function["tracing_config"] == {"mode": "Active"}
    assert functions["api_handler"]["handler"] == "app.app"
    assert functions["score_uploaded_csv"]["handler"] == "app.score_uploaded_csv"
    assert functions["fanout_task"]["handler"] == "app.fanout_task"
    assert (functions["api_handler"]["memory_size"], functions["api_handler"]["timeout"]) == (512, 10)
    # Each function gets the layers deploy/specs.py gives it: the API only LightGBM's C library
    # (the native layer), only the batch and fan-out functions numpy, scipy, lightgbm and pandas.
    for spec in specs.FUNCTIONS:
        names = [publish_layers.arn_layer_name(arn) for arn in functions[spec.name]["layers"]]
        assert names == [publish_layers.layer_name(layer, "x86_64") for layer in spec.layers]
    assert [publish_layers.arn_layer_name(arn) for arn in functions["api_handler"]["layers"]] == [
        "house-prices-native-py312-x86_64"
    ]


def test_each_function_has_its_own_role_with_the_committed_policy(terraform: dict[str, Any]) -> None:
    resources = terraform["resource"]
    roles, role_policies = resources["aws_iam_role"], resources["aws_iam_role_policy"]
    deployment = policy.stage_deployment(CONFIG, STAGE)
    assert set(roles) == set(role_policies) == {f"{name}_role" for name in FUNCTIONS}
    for name, function in resources["aws_lambda_function"].items():
        assert function["role"] == f"${{aws_iam_role.{name}_role.arn}}"
        committed = json.loads((ROOT / ".chalice" / policy.policy_file_name(STAGE, name)).read_text())
        assert json.loads(role_policies[f"{name}_role"]["policy"]) == committed
        # The policy's log group is the one Lambda writes to: /aws/lambda/<function name>.
        assert function["function_name"] == deployment.function_name(name)
        assert f"log-group:/aws/lambda/{function['function_name']}" in json.dumps(committed)


def test_uploads_to_the_input_prefix_trigger_the_batch_function(terraform: dict[str, Any]) -> None:
    resources = terraform["resource"]
    (notification,) = resources["aws_s3_bucket_notification"].values()
    assert notification["bucket"] == ENV["INPUT_BUCKET"]
    assert notification["lambda_function"] == [
        {
            "events": ["s3:ObjectCreated:*"],
            "lambda_function_arn": "${aws_lambda_function.score_uploaded_csv.arn}",
            "filter_prefix": "incoming/",
            "filter_suffix": ".csv",
        }
    ]
    permission = resources["aws_lambda_permission"]["score_uploaded_csv-s3event"]
    assert permission["principal"] == "s3.amazonaws.com"
    assert permission["source_arn"].endswith(f":s3:::{ENV['INPUT_BUCKET']}")


def test_regional_rest_api_with_cors_from_config(terraform: dict[str, Any], swagger: dict[str, Any]) -> None:
    resources = terraform["resource"]
    assert resources["aws_api_gateway_rest_api"]["rest_api"]["endpoint_configuration"] == {"types": ["REGIONAL"]}
    assert resources["aws_api_gateway_deployment"]["rest_api"]["stage_name"] == "api"
    predict = swagger["paths"]["/predict_price"]
    assert set(predict) == {"post", "options"}
    assert predict["post"]["x-amazon-apigateway-integration"]["uri"] == "${aws_lambda_function.api_handler.invoke_arn}"
    assert predict["post"]["consumes"] == ["application/json"]
    preflight = predict["options"]["x-amazon-apigateway-integration"]["responses"]["default"]["responseParameters"]
    assert preflight["method.response.header.Access-Control-Allow-Origin"] == f"'{ENV['CORS_ALLOW_ORIGIN']}'"
    assert preflight["method.response.header.Access-Control-Allow-Methods"] == "'POST,OPTIONS'"
    assert ENV["CORS_ALLOW_ORIGIN"] == "https://example.com"  # prod never answers "*"


def test_function_zip_is_small_and_holds_only_the_app(package: Path) -> None:
    zip_path = package / "deployment.zip"
    size = zip_path.stat().st_size
    print(f"function zip: {size:,} bytes ({size / 1024:.0f} KiB)")
    assert size < MAX_FUNCTION_ZIP
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    assert "app.py" in names
    assert "chalicelib/predictor.py" in names
    assert {"chalicelib/web/index.html", "chalicelib/web/app.js", "chalicelib/web/style.css"} <= set(names)
    top_level = {name.split("/")[0] for name in names}
    # Chalice copies vendor/ into the zip's root; it holds only its README (see vendor/README.md).
    assert top_level <= {"app.py", "__pycache__", "chalice", "chalicelib", "README.md"}, top_level  # never testkit/


def test_function_zip_carries_312_bytecode_for_every_module(package: Path) -> None:
    """/var/task is read-only: without pycs Lambda compiles app.py, chalicelib and chalice at every cold start."""
    zip_path = package / "deployment.zip"
    assert bytecode.bytecode_problems(zip_path) == []
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
    for module in ("app", "chalice/app", "chalice/__init__", "chalicelib/api"):
        assert bytecode.pyc_name(f"{module}.py") in names


def test_our_function_zip_matches_and_stale_bytecode_is_caught(tmp_path: Path) -> None:
    """deploy.layers' own function zip (the smoke test's) has the same files, and the check can fail."""
    zip_path = build_function_zip(ROOT, tmp_path / "function.zip")
    assert zip_path is not None and bytecode.bytecode_problems(zip_path) == []
    with zipfile.ZipFile(zip_path) as zf:
        entries = {info.filename: zf.read(info) for info in zf.infolist()}
    assert {name.split("/")[0] for name in entries} == {"app.py", "__pycache__", "chalice", "chalicelib"}
    stale = tmp_path / "stale.zip"
    with zipfile.ZipFile(stale, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data + b"\nCHANGED = True\n" if name == "chalicelib/api.py" else data)
    assert bytecode.bytecode_problems(stale) == [
        "chalicelib/__pycache__/api.cpython-312.pyc: compiled from other source than chalicelib/api.py (stale)"
    ]
    bytecode.add_bytecode(stale)
    assert bytecode.bytecode_problems(stale) == []
