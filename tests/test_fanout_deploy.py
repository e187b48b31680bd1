"""The fan-out state machine's deployment, offline: its definition is valid ASL, its role may do only what the
run needs, and the deploy command creates then updates the role and the state machine (moto's server).

Why: Chalice does not deploy Step Functions, so nothing else checks any of this before AWS does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from deploy import policy, state_machine
from deploy.policy import allows
from testkit.moto import DUMMY_AWS_ENV

ROOT = Path(__file__).resolve().parent.parent
VALIDATOR = ROOT / "build" / "asl" / "node_modules" / ".bin" / "asl-validator"
CONFIG = policy.read_config()
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:house-prices-prod-fanout_task"
PROD = state_machine.plan(CONFIG, "prod", FUNCTION)
ROLE = PROD.role_policy
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:house-prices-prod-fanout"


def validate(definition: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if not VALIDATOR.is_file():
        pytest.fail(f"{VALIDATOR} is missing: run `make asl-validator` (make test does)")
    path = tmp_path / "definition.json"
    path.write_text(json.dumps(definition))
    return subprocess.run([str(VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_generated_definition_is_valid_asl(stage: str, tmp_path: Path) -> None:
    target = state_machine.plan(CONFIG, stage, FUNCTION.replace("prod", stage))
    result = validate(target.definition, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_rejects_a_broken_definition(tmp_path: Path) -> None:
    broken = json.loads(json.dumps(PROD.definition))
    broken["States"]["Finish"]["Next"] = "Nowhere"
    assert validate(broken, tmp_path).returncode != 0


def test_definition_follows_the_config_and_passes_keys_not_data() -> None:
    ranges = PROD.definition["States"]["Ranges"]
    env = policy.stage_env(CONFIG, "prod")
    assert ranges["MaxConcurrency"] == int(env["FANOUT_MAX_CONCURRENCY"])
    assert ranges["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert ranges["ItemReader"]["Parameters"] == {"Bucket.$": "$.output_bucket", "Key.$": "$.plan_key"}
    assert ranges["ResultPath"] is None  # 10,000 results never reach the state's payload
    assert ranges["ItemProcessor"]["States"]["ScoreRange"]["OutputPath"] is None
    tasks = [s for s in PROD.definition["States"].values() if s["Type"] == "Task"]
    assert {t["Parameters"]["FunctionName"] for t in tasks} == {FUNCTION}
    assert all(
        t.get("Catch", [{}])[0].get("Next") == "Abort" for t in tasks if t is not PROD.definition["States"]["Abort"]
    )


@pytest.mark.parametrize(
    ("action", "resource", "expected"),
    [
        ("lambda:InvokeFunction", FUNCTION, True),
        ("lambda:InvokeFunction", FUNCTION + ":$LATEST", True),
        ("lambda:InvokeFunction", FUNCTION.replace("fanout_task", "score_uploaded_csv"), False),
        ("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:123456789012:function:house-prices-prod", False),
        ("s3:GetObject", "arn:aws:s3:::house-prices-prod-output/predictions/_runs/score-1/plan.json", True),
        ("s3:GetObject", "arn:aws:s3:::house-prices-prod-output/predictions/x.predictions.csv", False),
        ("s3:GetObject", "arn:aws:s3:::house-prices-prod-input/incoming/x.csv", False),
        ("s3:PutObject", "arn:aws:s3:::house-prices-prod-output/predictions/_runs/score-1/plan.json", False),
        ("s3:GetObject", "arn:aws:s3:::house-prices-dev-output/predictions/_runs/score-1/plan.json", False),
        ("states:StartExecution", MACHINE, True),
        ("states:StartExecution", MACHINE.replace("prod", "dev"), False),
        ("states:DescribeExecution", MACHINE.replace("stateMachine", "execution") + "/run:child", True),
        ("states:StopExecution", MACHINE.replace("stateMachine", "execution") + ":score-1", True),
        ("states:StopExecution", MACHINE.replace("stateMachine", "execution").replace("prod", "dev") + ":x", False),
        ("states:DeleteStateMachine", MACHINE, False),
        ("iam:PassRole", "*", False),
    ],
)
def test_state_machine_role_is_least_privilege(action: str, resource: str, expected: bool) -> None:
    assert allows(ROLE, action, resource) is expected


def test_deploy_needs_chalice_deploy_first(tmp_path: Path) -> None:
    with pytest.raises(state_machine.DeployError, match="run `chalice deploy --stage prod` first"):
        state_machine.deployed_function_arn("prod", tmp_path)


def deployed(tmp_path: Path) -> Path:
    """A .chalice folder as `chalice deploy --stage prod` leaves it."""
    chalice = tmp_path / ".chalice"
    shutil.copytree(ROOT / ".chalice", chalice, ignore=shutil.ignore_patterns("deployed", "deployments"))
    (chalice / "deployed").mkdir()
    record = {"name": "fanout_task", "resource_type": "lambda_function", "lambda_arn": FUNCTION}
    (chalice / "deployed" / "prod.json").write_text(json.dumps({"schema_version": "2.0", "resources": [record]}))
    return chalice


def test_dry_run_prints_the_prod_resources(tmp_path: Path, capsys) -> None:
    chalice = deployed(tmp_path)
    state_machine.main(["--stage", "prod", "--dry-run", "--config", str(chalice / "config.json")])
    printed = json.loads(capsys.readouterr().out)
    assert printed["state_machine"] == MACHINE
    assert printed["role_policy"] == ROLE and printed["definition"] == PROD.definition
    assert printed["role_trust_policy"]["Statement"][0]["Principal"] == {"Service": "states.amazonaws.com"}


def test_apply_creates_then_updates(s3_server) -> None:
    import boto3

    options = {"endpoint_url": s3_server.url, "region_name": "us-east-1", **_keys()}
    iam, states = boto3.client("iam", **options), boto3.client("stepfunctions", **options)
    target = state_machine.plan(CONFIG, "prod", FUNCTION)  # moto's account is 123456789012 too
    assert state_machine.apply(target, iam, states, sleep=lambda _: None) == MACHINE
    policy_doc = iam.get_role_policy(RoleName=target.role_name, PolicyName="fanout")["PolicyDocument"]
    assert policy_doc == target.role_policy

    changed = json.loads(json.dumps(target.definition))
    changed["States"]["Ranges"]["MaxConcurrency"] = 7
    assert state_machine.apply(replace(target, definition=changed), iam, states) == MACHINE
    described = states.describe_state_machine(stateMachineArn=MACHINE)
    assert json.loads(described["definition"]) == changed
    assert described["roleArn"] == iam.get_role(RoleName=target.role_name)["Role"]["Arn"]


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": DUMMY_AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": DUMMY_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    }
