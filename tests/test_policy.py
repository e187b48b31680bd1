"""The IAM policies: committed files match the generator, and they allow nothing beyond the stage's data.

Why: a policy that drifts from config, or that a typo widens to another bucket or prefix,
still deploys without complaint; only a test notices before an incident does.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deploy import policy
from deploy.policy import API_FUNCTION, BATCH_FUNCTION, FANOUT_FUNCTION, FUNCTIONS, Deployment, allows

CONFIG = policy.read_config()
STAGES = policy.lambda_stages(CONFIG)
PROD = policy.stage_deployment(CONFIG, "prod")
API = policy.function_policy(PROD, API_FUNCTION)
BATCH = policy.function_policy(PROD, BATCH_FUNCTION)
FANOUT = policy.function_policy(PROD, FANOUT_FUNCTION)

MODEL = "arn:aws:s3:::house-prices-prod-artifacts/models/house-prices/20260101T000000Z-abc/model.txt"
UPLOAD = "arn:aws:s3:::house-prices-prod-input/incoming/houses.csv"
PREDICTIONS = "arn:aws:s3:::house-prices-prod-output/predictions/houses.predictions.csv"
API_LOGS = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/house-prices-prod:log-stream:2026/01/01/x"
BATCH_LOGS = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/house-prices-prod-score_uploaded_csv"
FANOUT_LOGS = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/house-prices-prod-fanout_task"
RUN_FILE = "arn:aws:s3:::house-prices-prod-output/predictions/_runs/score-1/ranges/00001.json"
JOB_UPLOAD = "arn:aws:s3:::house-prices-prod-input/incoming/jobs/0123456789abcdef0123456789abcdef.csv"
JOB_OUTPUT = "arn:aws:s3:::house-prices-prod-output/predictions/jobs/0123456789abcdef0123456789abcdef.predictions.csv"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:house-prices-prod-fanout"
RUN = "arn:aws:states:us-east-1:123456789012:execution:house-prices-prod-fanout:score-1"


def test_lambda_stages_are_dev_and_prod() -> None:
    assert STAGES == ["dev", "prod"]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_committed_policy_files_equal_freshly_generated_ones(stage: str) -> None:
    for name, text in policy.stage_policy_files(CONFIG, stage).items():
        path = policy.CHALICE_DIR / name
        assert path.is_file(), f"{path} is missing: run python -m deploy.policy --all"
        assert path.read_text() == text, f"{path} is stale: run python -m deploy.policy --all"


def test_no_stale_policy_files() -> None:
    expected = {name for stage in STAGES for name in policy.stage_policy_files(CONFIG, stage)}
    assert {p.name for p in policy.CHALICE_DIR.glob("policy-*.json")} == expected


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_config_gives_each_function_its_generated_policy(stage: str) -> None:
    settings = CONFIG["stages"][stage]
    assert settings["autogen_policy"] is False
    assert set(settings["lambda_functions"]) == set(FUNCTIONS)
    for function, fn_settings in settings["lambda_functions"].items():
        assert fn_settings["iam_policy_file"] == policy.policy_file_name(stage, function)


def resources(doc: dict[str, Any]) -> list[str]:
    """Every resource granted, except X-Ray's, which has no resource-level permissions."""
    return [r for stmt in doc["Statement"] if stmt["Sid"] != "WriteTraces" for r in policy.as_list(stmt["Resource"])]


@pytest.mark.parametrize("stage", ["dev", "prod"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_resource_is_the_stages_own(stage: str, function: str) -> None:
    deployment = policy.stage_deployment(CONFIG, stage)
    own = (
        f"arn:aws:s3:::house-prices-{stage}-",
        f"arn:aws:logs:*:*:log-group:/aws/lambda/{deployment.function_name(function)}",
        f"arn:aws:states:*:*:stateMachine:house-prices-{stage}-fanout",
        f"arn:aws:states:*:*:execution:house-prices-{stage}-fanout:",
    )
    doc = policy.function_policy(deployment, function, tracing=policy.xray_enabled(CONFIG, stage))
    for resource in resources(doc):
        assert resource.startswith(own)
        # The only wildcard is a trailing one; the logs and states ARNs' region and account are "*".
        assert "*" not in resource.removeprefix("arn:aws:logs:*:*:").removeprefix("arn:aws:states:*:*:").rstrip("*")
        assert "?" not in resource


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_tracing_stages_may_send_traces_and_nothing_more_on_star(stage: str) -> None:
    assert policy.xray_enabled(CONFIG, stage)
    for name, text in policy.stage_policy_files(CONFIG, stage).items():
        (traces,) = [s for s in json.loads(text)["Statement"] if "*" in policy.as_list(s["Resource"])]
        assert (traces["Sid"], traces["Action"]) == ("WriteTraces", policy.TRACES), name
    untraced = policy.function_policy(policy.stage_deployment(CONFIG, stage), API_FUNCTION)
    assert all(s["Sid"] != "WriteTraces" for s in untraced["Statement"])


ACTIONS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:GetObjectAcl",
    "s3:PutObjectAcl",
    "s3:ListBucket",
    "s3:ListMultipartUploadParts",
    "s3:PutBucketPolicy",
    "s3:*",
    "*",
    "iam:*",
    "iam:PassRole",
    "sts:AssumeRole",
    "lambda:InvokeFunction",
    "logs:*",
    "logs:DeleteLogGroup",
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "states:StartExecution",
    "states:DescribeExecution",
    "states:StopExecution",
    "states:*",
]
LOG_WRITES = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}
OUTPUT_WRITES = {"s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"}


@pytest.mark.parametrize(
    ("doc", "resource", "expected"),
    [
        (API, MODEL, {"s3:GetObject"}),
        (API, UPLOAD, set()),
        (API, PREDICTIONS, set()),
        (API, API_LOGS, LOG_WRITES),
        (API, BATCH_LOGS, set()),
        (API, "*", set()),
        (BATCH, MODEL, {"s3:GetObject"}),
        (BATCH, UPLOAD, {"s3:GetObject"}),
        (BATCH, PREDICTIONS, OUTPUT_WRITES),
        (BATCH, BATCH_LOGS, LOG_WRITES),
        (BATCH, API_LOGS, set()),
        (BATCH, "*", set()),
        (BATCH, MACHINE, {"states:StartExecution"}),
        (BATCH, RUN, set()),
        (BATCH, RUN_FILE, OUTPUT_WRITES),
        (API, RUN_FILE, {"s3:GetObject"}),
        (API, JOB_UPLOAD, {"s3:GetObject", "s3:PutObject"}),
        (API, JOB_OUTPUT, {"s3:GetObject"}),
        (API, RUN, {"states:DescribeExecution"}),
        (API, MACHINE, set()),
        (FANOUT, MODEL, {"s3:GetObject"}),
        (FANOUT, UPLOAD, {"s3:GetObject"}),
        (FANOUT, PREDICTIONS, OUTPUT_WRITES),
        (FANOUT, RUN_FILE, OUTPUT_WRITES | {"s3:GetObject"}),
        (FANOUT, FANOUT_LOGS, LOG_WRITES),
        (FANOUT, BATCH_LOGS, set()),
        (FANOUT, MACHINE, set()),
        (FANOUT, RUN, set()),
        (FANOUT, "*", set()),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_exactly_these_actions_on_each_resource(doc: dict[str, Any], resource: str, expected: set[str]) -> None:
    assert {action for action in ACTIONS if allows(doc, action, resource)} == expected


def test_the_batch_function_never_writes_artifacts_or_uploads() -> None:
    assert not allows(BATCH, "s3:PutObject", MODEL)
    assert not allows(BATCH, "s3:PutObject", "arn:aws:s3:::house-prices-prod-artifacts/models/house-prices/LATEST")
    # Writing into incoming/ would trigger the function on its own output.
    assert not allows(BATCH, "s3:PutObject", UPLOAD)
    assert not allows(BATCH, "s3:PutObject", "arn:aws:s3:::house-prices-prod-output/incoming/x.csv")
    assert not allows(BATCH, "s3:GetObject", PREDICTIONS)
    assert not allows(BATCH, "logs:PutLogEvents", API_LOGS)


OUTSIDE = [
    # other buckets, other stages
    "arn:aws:s3:::house-prices-dev-artifacts/models/house-prices/v/model.txt",
    "arn:aws:s3:::house-prices-dev-input/incoming/houses.csv",
    "arn:aws:s3:::house-prices-dev-output/predictions/houses.predictions.csv",
    "arn:aws:s3:::someone-elses-bucket/incoming/houses.csv",
    "arn:aws:s3:::house-prices-prod-input-evil/incoming/houses.csv",
    "arn:aws:s3:::house-prices-prod-artifacts2/models/house-prices/v/model.txt",
    # sibling and parent prefixes
    "arn:aws:s3:::house-prices-prod-input/incoming-evil/houses.csv",
    "arn:aws:s3:::house-prices-prod-input/incoming",
    "arn:aws:s3:::house-prices-prod-output/predictions-evil/x.csv",
    "arn:aws:s3:::house-prices-prod-output/predictions",
    "arn:aws:s3:::house-prices-prod-artifacts/models/house-prices-evil/v/model.txt",
    "arn:aws:s3:::house-prices-prod-artifacts/models/house-prices",
    "arn:aws:s3:::house-prices-prod-artifacts/models/other/model.txt",
    # S3 keys are not paths: "../" outside the prefix is just another key outside it
    "arn:aws:s3:::house-prices-prod-output/../house-prices-prod-artifacts/models/house-prices/LATEST",
    "arn:aws:s3:::house-prices-prod-input/../incoming/x.csv",
    # bucket roots and the buckets themselves
    "arn:aws:s3:::house-prices-prod-artifacts/LATEST",
    "arn:aws:s3:::house-prices-prod-artifacts",
    "arn:aws:s3:::house-prices-prod-input",
    "arn:aws:s3:::house-prices-prod-output",
    "arn:aws:s3:::*",
    "*",
    # case matters in ARNs
    "arn:aws:s3:::house-prices-prod-input/Incoming/houses.csv",
    "arn:aws:s3:::HOUSE-PRICES-PROD-OUTPUT/predictions/x.csv",
]


@pytest.mark.parametrize("doc", [API, BATCH, FANOUT], ids=["api", "batch", "fanout"])
@pytest.mark.parametrize("resource", OUTSIDE)
def test_nothing_outside_the_stage_prefixes(doc: dict[str, Any], resource: str) -> None:
    for action in ACTIONS:
        assert not allows(doc, action, resource), (action, resource)


@given(st.text(max_size=40))
def test_input_reads_are_exactly_the_input_prefix(key: str) -> None:
    assert allows(BATCH, "s3:GetObject", f"arn:aws:s3:::house-prices-prod-input/{key}") == key.startswith("incoming/")


@given(st.text(max_size=40))
def test_output_writes_are_exactly_the_output_prefix(key: str) -> None:
    allowed = allows(BATCH, "s3:PutObject", f"arn:aws:s3:::house-prices-prod-output/{key}")
    assert allowed == key.startswith("predictions/")


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=3, max_size=30), st.text(max_size=30))
def test_no_other_bucket_at_all(bucket: str, key: str) -> None:
    own = {PROD.artifacts_bucket, PROD.input_bucket, PROD.output_bucket}
    if bucket not in own:
        for action in ACTIONS:
            assert not allows(BATCH, action, f"arn:aws:s3:::{bucket}/{key}")


def test_publisher_may_write_artifacts_but_nothing_else() -> None:
    publisher = policy.publisher_policy(PROD)
    assert allows(publisher, "s3:PutObject", MODEL)
    assert allows(publisher, "s3:GetObject", MODEL)
    assert not allows(publisher, "s3:PutObject", UPLOAD)
    assert {action for action in ACTIONS if allows(publisher, action, MODEL)} == {"s3:GetObject", "s3:PutObject"}


def test_evaluator_wildcards_and_case() -> None:
    doc = {"Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/a?c/*"}]}
    assert allows(doc, "s3:GetObject", "arn:aws:s3:::b/abc/key")
    assert allows(doc, "S3:GETOBJECT", "arn:aws:s3:::b/abc/key")  # actions ignore case
    assert allows(doc, "s3:GetObjectTagging", "arn:aws:s3:::b/a.c/d/e")
    assert not allows(doc, "s3:GetObject", "arn:aws:s3:::b/abbc/key")
    assert not allows(doc, "s3:GetObject", "arn:aws:s3:::b/ABC/key")  # resources do not
    assert not allows(doc, "s3:PutObject", "arn:aws:s3:::b/abc/key")
    assert not allows({"Statement": []}, "s3:GetObject", "arn:aws:s3:::b/abc/key")
    dots = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b.c/x.y"}]}
    assert not allows(dots, "s3:GetObject", "arn:aws:s3:::bxc/xzy")  # "." is literal, not a regex


@pytest.mark.parametrize(
    "stmt",
    [
        {"Effect": "Deny", "Action": "*", "Resource": "*"},
        {"Effect": "Allow", "NotAction": "s3:DeleteObject", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": "*",
            "Condition": {"StringLike": {"s3:prefix": "x"}},
        },
    ],
)
def test_evaluator_refuses_what_it_cannot_evaluate(stmt: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="cannot evaluate"):
        allows({"Statement": [stmt]}, "s3:GetObject", "arn:aws:s3:::b/k")


ENV = {
    "ARTIFACTS_URI": "s3://a/models",
    "INPUT_BUCKET": "i",
    "INPUT_PREFIX": "incoming/",
    "OUTPUT_BUCKET": "o",
    "OUTPUT_PREFIX": "predictions/",
}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"ARTIFACTS_URI": "artifacts"}, "is not s3://"),
        ({"INPUT_PREFIX": "incoming"}, "must end with '/'"),
        ({"OUTPUT_PREFIX": "predictions"}, "must end with '/'"),
        ({"INPUT_BUCKET": "*"}, "wildcard"),
        ({"OUTPUT_PREFIX": "p?/"}, "wildcard"),
        ({"ARTIFACTS_URI": "s3://a/${aws:username}"}, "wildcard or variable"),
    ],
)
def test_settings_that_would_over_grant_are_refused(override: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Deployment.from_env({**ENV, **override})


@pytest.mark.parametrize(
    ("uri", "resource"),
    [
        ("s3://a/models/", "arn:aws:s3:::a/models/*"),
        ("s3://a//m//", "arn:aws:s3:::a/m/*"),
        ("s3://a", "arn:aws:s3:::a/*"),
    ],
)
def test_artifact_prefix_follows_the_loader(uri: str, resource: str) -> None:
    doc = policy.function_policy(Deployment.from_env({**ENV, "ARTIFACTS_URI": uri}), API_FUNCTION)
    assert doc["Statement"][0]["Resource"] == [resource]


def test_cli_writes_one_stage_and_refuses_the_local_one(tmp_path, capsys) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG))
    policy.main(["--stage", "dev", "--config", str(config)])
    assert sorted(p.name for p in tmp_path.glob("policy-*.json")) == [
        "policy-dev-api_handler.json",
        "policy-dev-fanout_task.json",
        "policy-dev-score_uploaded_csv.json",
    ]
    with pytest.raises(SystemExit) as exc:
        policy.main(["--stage", "local", "--config", str(config)])
    assert exc.value.code == 2
    assert "not s3://bucket/prefix" in capsys.readouterr().err
