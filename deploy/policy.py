"""Least-privilege IAM policies for the Lambda functions, generated from .chalice/config.json.

Why not Chalice's generator: it reads app.py only (missing the clients in chalicelib) and
grants on `Resource: "*"`. Here every statement names the stage's buckets and prefixes,
so one function cannot read another stage's data or overwrite the model it serves.

One policy per function, because Chalice gives each function its own role once
`autogen_policy` is false: the API function may read the model and, for the jobs API, sign
uploads into `incoming/jobs/` and read what it reports on; the batch function and the fan-out
task may read uploads and write predictions, and the fan-out task reads its run's files back.
None may write artifacts: publishing is done by a person or CI with `publisher_policy`, never
by the service. The fan-out state machine's role (`state_machine_policy`) is deployed by
deploy/state_machine.py, outside Chalice.

    python -m deploy.policy --stage STAGE | --all        # writes .chalice/policy-<stage>-<function>.json
    python -m deploy.policy --stage prod --publisher     # prints the publisher's policy

`allows` answers "would this policy allow this action on this ARN" for the statements
written here (Allow, Action, Resource, `*`/`?` wildcards); it is a test aid, not an IAM engine.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from chalicelib.batch.settings import JOBS_FOLDER, RUNS_FOLDER

REPO_ROOT = Path(__file__).resolve().parent.parent
CHALICE_DIR = REPO_ROOT / ".chalice"
CONFIG_PATH = CHALICE_DIR / "config.json"
API_FUNCTION = "api_handler"
BATCH_FUNCTION = "score_uploaded_csv"
FANOUT_FUNCTION = "fanout_task"
FUNCTIONS = (API_FUNCTION, BATCH_FUNCTION, FANOUT_FUNCTION)

READ = ["s3:GetObject"]  # also what HeadObject needs
# PutObject authorises CreateMultipartUpload, UploadPart and CompleteMultipartUpload too.
# A failed upload aborts its parts; a new result deletes the stale other one (predictions
# or error report) of an earlier upload of the same key.
WRITE = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"]
LOGS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
# What Lambda's active tracing needs (`"xray": true` in a stage). X-Ray has no resource-level
# permissions for these two actions, so this is the one statement whose resource is "*".
TRACES = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]


@dataclass(frozen=True)
class Deployment:
    """Where one stage's functions read and write, as the app's environment variables say."""

    app_name: str
    stage: str
    artifacts_bucket: str
    artifacts_prefix: str
    input_bucket: str
    input_prefix: str
    output_bucket: str
    output_prefix: str
    state_machine_name: str

    @classmethod
    def from_env(cls, env: Mapping[str, str], app_name: str = "house-prices", stage: str = "dev") -> Deployment:
        """Reads ARTIFACTS_URI, INPUT_BUCKET/PREFIX, OUTPUT_BUCKET/PREFIX and FANOUT_STATE_MACHINE;
        refuses what would over-grant."""
        uri = env["ARTIFACTS_URI"]
        if not uri.startswith("s3://"):
            raise ValueError(f"stage {stage}: ARTIFACTS_URI {uri!r} is not s3://bucket/prefix; Lambda cannot read it")
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        deployment = cls(
            app_name,
            stage,
            bucket,
            # The loader strips slashes and joins with "/" (chalicelib.artifacts.S3Store.key).
            prefix.strip("/") + "/" if prefix.strip("/") else "",
            env["INPUT_BUCKET"],
            env["INPUT_PREFIX"],
            env["OUTPUT_BUCKET"],
            env["OUTPUT_PREFIX"],
            env.get("FANOUT_STATE_MACHINE", f"{app_name}-{stage}-fanout"),
        )
        deployment.check()
        return deployment

    def check(self) -> None:
        for name, value in vars(self).items():
            if set(value) & set("*?$"):
                raise ValueError(f"stage {self.stage}: {name} {value!r} would be a wildcard or variable in an ARN")
        for name in ("input_prefix", "output_prefix"):
            value = getattr(self, name)
            # Without the slash, "incoming" would also grant "incoming-evil/".
            if value and not value.endswith("/"):
                raise ValueError(f"stage {self.stage}: {name} {value!r} must end with '/'")

    def function_name(self, function: str) -> str:
        """Chalice's Lambda function name: all routes share `<app>-<stage>`."""
        base = f"{self.app_name}-{self.stage}"
        return base if function == API_FUNCTION else f"{base}-{function}"

    def state_machine_arn(self, region: str = "*", account: str = "*") -> str:
        return f"arn:aws:states:{region}:{account}:stateMachine:{self.state_machine_name}"

    def execution_arns(self, region: str = "*", account: str = "*") -> list[str]:
        """The runs (`...:NAME:run`) and a Distributed Map's child executions (`...:NAME/map-run:child`)."""
        base = f"arn:aws:states:{region}:{account}:execution:{self.state_machine_name}"
        return [f"{base}:*", f"{base}/*"]

    @property
    def run_files(self) -> str:
        return objects(self.output_bucket, self.output_prefix + RUNS_FOLDER)


def objects(bucket: str, prefix: str) -> str:
    return f"arn:aws:s3:::{bucket}/{prefix}*"


def statement(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def function_policy(deployment: Deployment, function: str, tracing: bool = False) -> dict[str, Any]:
    """The policy of one function's role; `tracing` when the stage turns on X-Ray."""
    log_group = f"arn:aws:logs:*:*:log-group:/aws/lambda/{deployment.function_name(function)}"
    statements = [
        statement("ReadModelArtifacts", READ, [objects(deployment.artifacts_bucket, deployment.artifacts_prefix)]),
    ]
    uploads = statement("ReadUploadedCsvs", READ, [objects(deployment.input_bucket, deployment.input_prefix)])
    predictions = statement("WritePredictions", WRITE, [objects(deployment.output_bucket, deployment.output_prefix)])
    if function == BATCH_FUNCTION:
        # The plan of a fanned-out run is written under the output prefix, then the run started.
        statements += [
            uploads,
            predictions,
            statement("StartFanoutRuns", ["states:StartExecution"], [deployment.state_machine_arn()]),
        ]
    elif function == FANOUT_FUNCTION:
        statements += [uploads, predictions, statement("ReadRunFiles", READ, [deployment.run_files])]
    elif function == API_FUNCTION:
        # The jobs API: a presigned PUT is signed with the API's own permission, and a job's
        # state is read from its upload, its output or report, and its run's totals.
        job_uploads = objects(deployment.input_bucket, deployment.input_prefix + JOBS_FOLDER)
        job_results = objects(deployment.output_bucket, deployment.output_prefix + JOBS_FOLDER)
        statements += [
            statement("SignJobUploads", ["s3:PutObject"], [job_uploads]),
            statement("ReadJobs", READ, [job_uploads, job_results, deployment.run_files]),
            statement("DescribeJobRuns", ["states:DescribeExecution"], deployment.execution_arns()[:1]),
        ]
    else:
        raise ValueError(f"no policy for function {function!r}; known: {', '.join(FUNCTIONS)}")
    statements.append(statement("WriteOwnLogs", LOGS, [log_group, f"{log_group}:*"]))
    if tracing:
        statements.append(statement("WriteTraces", TRACES, ["*"]))
    return {"Version": "2012-10-17", "Statement": statements}


def state_machine_policy(deployment: Deployment, function_arn: str) -> dict[str, Any]:
    """The fan-out state machine's role: invoke the fan-out task, read run plans (ItemReader), and run
    its Distributed Map, which starts, describes and stops child executions of this state machine."""
    region, account = function_arn.split(":")[3:5]
    return {
        "Version": "2012-10-17",
        "Statement": [
            statement("InvokeFanoutTask", ["lambda:InvokeFunction"], [function_arn, f"{function_arn}:*"]),
            statement("ReadRunPlans", READ, [deployment.run_files]),
            statement("StartMapRuns", ["states:StartExecution"], [deployment.state_machine_arn(region, account)]),
            statement(
                "ManageMapRuns",
                ["states:DescribeExecution", "states:StopExecution"],
                deployment.execution_arns(region, account),
            ),
        ],
    }


STATES_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def publisher_policy(deployment: Deployment) -> dict[str, Any]:
    """For whoever runs `python -m training.publish`: write and read back the artifacts."""
    resource = objects(deployment.artifacts_bucket, deployment.artifacts_prefix)
    publish = statement("PublishModelArtifacts", ["s3:PutObject", *READ], [resource])
    return {"Version": "2012-10-17", "Statement": [publish]}


def read_config(path: Path = CONFIG_PATH) -> dict[str, Any]:
    return json.loads(path.read_text())


def stage_env(config: Mapping[str, Any], stage: str) -> dict[str, str]:
    """Top-level environment variables overridden by the stage's, as Chalice merges them."""
    if stage not in config["stages"]:
        raise ValueError(f"no stage {stage!r} in config; stages: {', '.join(config['stages'])}")
    return {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}


def stage_deployment(config: Mapping[str, Any], stage: str) -> Deployment:
    return Deployment.from_env(stage_env(config, stage), config["app_name"], stage)


def xray_enabled(config: Mapping[str, Any], stage: str) -> bool:
    """Chalice's `xray` setting for a stage: the stage's own, else the top level's."""
    return bool(config["stages"][stage].get("xray", config.get("xray", False)))


def lambda_stages(config: Mapping[str, Any]) -> list[str]:
    """Stages that run on Lambda: their model comes from S3 (the local stage reads a folder)."""
    return [s for s in config["stages"] if stage_env(config, s).get("ARTIFACTS_URI", "").startswith("s3://")]


def policy_file_name(stage: str, function: str) -> str:
    """Relative to .chalice/, as Chalice's `iam_policy_file` setting expects."""
    return f"policy-{stage}-{function}.json"


def stage_policy_files(config: Mapping[str, Any], stage: str) -> dict[str, str]:
    """File name -> file text for every function of a stage."""
    deployment = stage_deployment(config, stage)
    tracing = xray_enabled(config, stage)
    return {policy_file_name(stage, fn): render(function_policy(deployment, fn, tracing)) for fn in FUNCTIONS}


def render(policy: Mapping[str, Any]) -> str:
    return json.dumps(policy, indent=2) + "\n"


@cache
def wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def allows(policy: Mapping[str, Any], action: str, resource: str) -> bool:
    """True if an Allow statement matches the action (case-insensitive) and the ARN (exact case)."""
    for stmt in policy["Statement"]:
        unsupported = set(stmt) - {"Sid", "Effect", "Action", "Resource"}
        if stmt.get("Effect") != "Allow" or unsupported:
            # Deny, NotAction, Condition...: answering without them could be wrong, so refuse.
            raise ValueError(f"statement {stmt.get('Sid', '?')} uses what `allows` cannot evaluate")
        if any(wildcard(a, True).fullmatch(action) for a in as_list(stmt["Action"])) and any(
            wildcard(r, False).fullmatch(resource) for r in as_list(stmt["Resource"])
        ):
            return True
    return False


def write_stage(config: Mapping[str, Any], stage: str, out_dir: Path) -> list[Path]:
    written = []
    for name, text in stage_policy_files(config, stage).items():
        path = out_dir / name
        path.write_text(text)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--stage", help="one stage")
    which.add_argument("--all", action="store_true", help="every stage that runs on Lambda (not the local one)")
    parser.add_argument("--publisher", action="store_true", help="print the publisher's policy for --stage")
    parser.add_argument("--config", type=Path, default=CONFIG_PATH)
    args = parser.parse_args(argv)
    if args.publisher and not args.stage:
        parser.error("--publisher needs --stage")
    config = read_config(args.config)
    try:
        if args.publisher:
            print(render(publisher_policy(stage_deployment(config, args.stage))), end="")
            return
        for stage in [args.stage] if args.stage else lambda_stages(config):
            for path in write_stage(config, stage, args.config.parent):
                print(f"wrote {path}")
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")


if __name__ == "__main__":
    main()
