"""The fan-out state machine: its Amazon States Language definition, its role, and the command that deploys them.

Chalice 1.34 has no Step Functions, so this runs after `chalice deploy` (`make deploy` does both):
it reads the `fanout_task` function's ARN from `.chalice/deployed/<stage>.json`, generates the
definition from `.chalice/config.json` (FANOUT_* settings) and creates or updates the IAM role
and the Standard state machine. `--dry-run` prints what it would deploy, offline.

    python -m deploy.state_machine --stage prod [--dry-run]

The definition, in order: `Start` (create the multipart upload) -> `Ranges`, a Distributed Map
reading the plan (a JSON array of byte ranges in S3, so 10,000 ranges fit: the execution input
stays ~1 KiB) and running `fanout_task` per range -> `Finish` (complete the upload) -> `Outcome`
(ranges that split a quoted field: `ScoreWhole`, one function) . Any failure: `Abort` (no partial
output, an error report) -> `Failed`. Payloads between states are keys and counts only.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy import policy

FANOUT_FUNCTION = "fanout_task"
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
# Lambda's transient errors, retried by every task (the steps are idempotent: a part re-uploaded,
# a summary rewritten, an upload completed from the same parts).
TRANSIENT = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
CATCH_ALL = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Abort"}]


class DeployError(Exception):
    """What the deploy command cannot do: the message says what to run first."""


@dataclass(frozen=True)
class Fanout:
    """The stage's fan-out settings, from `.chalice/config.json`."""

    state_machine_name: str
    max_concurrency: int
    threshold_bytes: int
    range_bytes: int

    @classmethod
    def of_stage(cls, config: Mapping[str, Any], stage: str) -> Fanout:
        env = policy.stage_env(config, stage)
        return cls(
            env["FANOUT_STATE_MACHINE"],
            int(env["FANOUT_MAX_CONCURRENCY"]),
            int(env["FANOUT_THRESHOLD_BYTES"]),
            int(env["FANOUT_RANGE_BYTES"]),
        )


def _task(step: str, function_arn: str, **fields: Any) -> dict[str, Any]:
    """A Lambda task calling `fanout_task` with `{"step": step, "run": <state input>}`."""
    return {
        "Type": "Task",
        "Resource": LAMBDA_INVOKE,
        "Parameters": {"FunctionName": function_arn, "Payload": {"step": step, "run.$": "$"}},
        "Retry": [{"ErrorEquals": TRANSIENT, "IntervalSeconds": 2, "MaxAttempts": 6, "BackoffRate": 2}],
        **fields,
    }


def definition(function_arn: str, fanout: Fanout) -> dict[str, Any]:
    """The state machine's definition (see the module docstring)."""
    score_range = _task("score_range", function_arn, End=True, OutputPath=None)
    score_range["Parameters"]["Payload"] = {"step": "score_range", "run.$": "$.run", "range.$": "$.range"}
    return {
        "Comment": "Score one uploaded CSV in byte ranges (house-prices, chalicelib/batch/fanout.py)",
        "StartAt": "Start",
        "States": {
            "Start": _task(
                "start",
                function_arn,
                ResultSelector={"upload_id.$": "$.Payload.upload_id"},
                ResultPath="$.upload",
                Catch=CATCH_ALL,
                Next="Ranges",
            ),
            "Ranges": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket.$": "$.output_bucket", "Key.$": "$.plan_key"},
                },
                "ItemSelector": {"run.$": "$", "range.$": "$$.Map.Item.Value"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "ScoreRange",
                    "States": {"ScoreRange": score_range},
                },
                "MaxConcurrency": fanout.max_concurrency,
                "ToleratedFailurePercentage": 0,
                "ResultPath": None,
                "Catch": CATCH_ALL,
                "Next": "Finish",
            },
            "Finish": _task(
                "finish",
                function_arn,
                ResultSelector={"outcome.$": "$.Payload.outcome"},
                ResultPath="$.finish",
                Catch=CATCH_ALL,
                Next="Outcome",
            ),
            "Outcome": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.finish.outcome", "StringEquals": "misframed", "Next": "ScoreWhole"}],
                "Default": "Done",
            },
            "ScoreWhole": _task("score_whole", function_arn, ResultPath=None, Catch=CATCH_ALL, End=True),
            "Done": {"Type": "Succeed"},
            "Abort": _task("abort", function_arn, ResultPath=None, Next="Failed"),
            "Failed": {"Type": "Fail", "Error": "FanoutFailed", "Cause": "see the error report next to the output"},
        },
    }


@dataclass(frozen=True)
class StateMachineDeployment:
    """Everything the command creates or updates for one stage."""

    name: str
    role_name: str
    role_policy: dict[str, Any]
    definition: dict[str, Any]
    region: str
    account: str

    @property
    def arn(self) -> str:
        return f"arn:aws:states:{self.region}:{self.account}:stateMachine:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "state_machine": self.arn,
            "type": "STANDARD",
            "role": self.role_name,
            "role_trust_policy": policy.STATES_TRUST_POLICY,
            "role_policy": self.role_policy,
            "definition": self.definition,
        }


def deployed_function_arn(stage: str, chalice_dir: Path = policy.CHALICE_DIR) -> str:
    """The fan-out task's ARN, as `chalice deploy` recorded it."""
    path = chalice_dir / "deployed" / f"{stage}.json"
    if not path.is_file():
        raise DeployError(f"{path} does not exist: run `chalice deploy --stage {stage}` first (make deploy does)")
    resources = json.loads(path.read_text()).get("resources", [])
    for resource in resources:
        if resource.get("name") == FANOUT_FUNCTION and resource.get("resource_type") == "lambda_function":
            return str(resource["lambda_arn"])
    raise DeployError(f"{path} has no {FANOUT_FUNCTION} function: is app.py's fanout_task deployed?")


def plan(config: Mapping[str, Any], stage: str, function_arn: str) -> StateMachineDeployment:
    """What deploying `stage` means, computed offline."""
    deployment = policy.stage_deployment(config, stage)
    fanout = Fanout.of_stage(config, stage)
    if fanout.state_machine_name != deployment.state_machine_name:
        raise DeployError("FANOUT_STATE_MACHINE is read differently by the policy and the state machine")
    region, account = function_arn.split(":")[3:5]
    return StateMachineDeployment(
        fanout.state_machine_name,
        f"{fanout.state_machine_name}-role",
        policy.state_machine_policy(deployment, function_arn),
        definition(function_arn, fanout),
        region,
        account,
    )


def apply(target: StateMachineDeployment, iam: Any, states: Any, sleep: Callable[[float], None] = time.sleep) -> str:
    """Create or update the role and the state machine; returns the state machine's ARN."""
    try:
        role_arn = iam.get_role(RoleName=target.role_name)["Role"]["Arn"]
        fresh_role = False
    except iam.exceptions.NoSuchEntityException:
        trust = json.dumps(policy.STATES_TRUST_POLICY)
        role_arn = iam.create_role(RoleName=target.role_name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        fresh_role = True
    iam.put_role_policy(RoleName=target.role_name, PolicyName="fanout", PolicyDocument=json.dumps(target.role_policy))
    body = json.dumps(target.definition)
    try:
        states.describe_state_machine(stateMachineArn=target.arn)
    except states.exceptions.StateMachineDoesNotExist:
        for attempt in range(6):
            try:
                states.create_state_machine(name=target.name, definition=body, roleArn=role_arn, type="STANDARD")
                return target.arn
            except states.exceptions.ClientError as exc:
                # A new role takes a few seconds to become assumable by Step Functions.
                if not fresh_role or "AccessDenied" not in str(exc) or attempt == 5:
                    raise
                sleep(5)
    states.update_state_machine(stateMachineArn=target.arn, definition=body, roleArn=role_arn)
    return target.arn


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", required=True)
    parser.add_argument("--dry-run", action="store_true", help="print what would be deployed; touch nothing")
    parser.add_argument("--config", type=Path, default=policy.CONFIG_PATH)
    args = parser.parse_args(argv)
    try:
        function_arn = deployed_function_arn(args.stage, args.config.parent)
        target = plan(policy.read_config(args.config), args.stage, function_arn)
        if args.dry_run:
            print(json.dumps(target.to_dict(), indent=2))
            return
        import boto3

        arn = apply(target, boto3.client("iam"), boto3.client("stepfunctions", region_name=target.region))
    except (DeployError, ValueError, KeyError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(f"deployed {arn}")


if __name__ == "__main__":
    main()
