"""A pytest plugin: record every S3 call the project's code makes, then check each against its IAM policy.

Why: moto does not enforce IAM, so a new call in chalicelib (a HeadObject, a listing, a
key outside the prefix) passes every end-to-end test and fails only on AWS. Register it
in conftest.py with `pytest_plugins = ["tests.s3_audit"]`.

Every botocore client created during the session reports its S3 calls, and so does every
`S3Reader.get` (chalicelib.s3_get, the service's own client: its only S3 operation is
GetObject, and `get` is the only method that sends one). A call counts as
the code's when `chalicelib/` or `training/publish.py` is on its stack (or on the stack
that submitted the thread-pool task it runs in); test set-up is not the code's. Each is
checked against the policy deploy.policy generates for the deployment in effect: the
artifact root of the `S3Store` and the buckets and prefixes of the `BatchSettings` on
that stack. Who needs the permission follows from the stack too: publishing needs the
publisher's policy, batch scoring the batch function's, and loading the model both
functions'. One test item, run last, does the check whenever a selected test of
END_TO_END uses the `s3_server` fixture; it fails if the code made no S3 call at all.
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import botocore.session
import pytest

from chalicelib.artifacts import S3Store
from chalicelib.batch.settings import BatchSettings
from chalicelib.s3_get import S3Reader
from deploy import policy

ROOT = Path(__file__).resolve().parent.parent
# testkit/stepfunctions.py stands in for Step Functions: its own calls (the Map's ItemReader) are the state
# machine role's.
STATE_MACHINE_RUNNER = "testkit/stepfunctions.py"
CODE = (str(ROOT / "chalicelib") + os.sep, str(ROOT / "training" / "publish.py"), str(ROOT / STATE_MACHINE_RUNNER))
HANDLER_ID = "tests.s3_audit"
# Modules whose S3 tests run the code (not just tools): selecting one of them adds the audit.
END_TO_END = (
    "tests/test_artifacts.py",
    "tests/test_batch",
    "tests/test_faults.py",
    "tests/test_fanout.py",
    "tests/test_jobs",
)
PUBLISHER = "publisher"
STATE_MACHINE = "state machine"
# The function ARN the state machine role is checked with (it names the function, not S3).
AUDIT_FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:audit-fanout_task"

# Operation -> the IAM actions it needs, and whether they apply to the bucket or the object.
OBJECT_ACTIONS = {
    "GetObject": ["s3:GetObject"],
    "HeadObject": ["s3:GetObject"],
    "PutObject": ["s3:PutObject"],
    "CreateMultipartUpload": ["s3:PutObject"],
    "UploadPart": ["s3:PutObject"],
    "CompleteMultipartUpload": ["s3:PutObject"],
    "AbortMultipartUpload": ["s3:AbortMultipartUpload"],
    "ListParts": ["s3:ListMultipartUploadParts"],
    "DeleteObject": ["s3:DeleteObject"],
}
BUCKET_ACTIONS = {"ListObjects": ["s3:ListBucket"], "ListObjectsV2": ["s3:ListBucket"], "HeadBucket": ["s3:ListBucket"]}
# Parameters that need an action of their own on top of the operation's.
PARAMETER_ACTIONS = {"ACL": "s3:PutObjectAcl", "Tagging": "s3:PutObjectTagging", "VersionId": "s3:GetObjectVersion"}


@dataclass(frozen=True)
class Origin:
    """What is on the stack of a call: the project's files, and the settings it runs with."""

    files: tuple[str, ...] = ()
    store: S3Store | None = None
    settings: BatchSettings | None = None

    def merged(self, parent: Origin | None) -> Origin:
        """This stack continued by the stack that started its thread-pool task."""
        if parent is None:
            return self
        return Origin(self.files + parent.files, self.store or parent.store, self.settings or parent.settings)


@dataclass(frozen=True)
class Call:
    test: str
    operation: str
    bucket: str
    key: str | None
    extra_params: tuple[str, ...]
    origin: Origin


_inherited = threading.local()


def origin_of(frame: FrameType | None) -> Origin:
    """Walk outwards from `frame`; the innermost S3Store and BatchSettings win."""
    origin = Origin()
    while frame is not None:
        if frame.f_code.co_filename.startswith(CODE):
            origin = replace(origin, files=(*origin.files, frame.f_code.co_filename))
        if origin.store is None or origin.settings is None:
            for value in frame.f_locals.values():
                if origin.store is None and isinstance(value, S3Store):
                    origin = replace(origin, store=value)
                elif origin.settings is None and isinstance(value, BatchSettings):
                    origin = replace(origin, settings=value)
        frame = frame.f_back
    return origin.merged(getattr(_inherited, "origin", None))


class Recorder:
    """Collects the code's S3 calls from the clients it is attached to."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build.s3", self.record, unique_id=HANDLER_ID)

    def record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        """botocore's before-parameter-build hook."""
        extra = tuple(sorted(p for p in PARAMETER_ACTIONS if p in params))
        self.add(model.name, params.get("Bucket", ""), params.get("Key"), extra, sys._getframe(1))

    def add(self, operation: str, bucket: str, key: str | None, extra: tuple[str, ...], frame: FrameType) -> None:
        origin = origin_of(frame)
        if not origin.files:
            return
        call = Call(os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0], operation, bucket, key, extra, origin)
        with self._lock:
            self.calls.append(call)

    def wrap_reader_get(self, get: Callable[[S3Reader, str, str], bytes]) -> Callable[[S3Reader, str, str], bytes]:
        """`S3Reader.get` that reports each GET before sending it."""

        def recorded_get(reader: S3Reader, bucket: str, key: str) -> bytes:
            self.add("GetObject", bucket, key, (), sys._getframe(1))
            return get(reader, bucket, key)

        return recorded_get


def principals(origin: Origin) -> list[str]:
    """Whose policy must allow a call: publishing, the jobs API, a fan-out step, batch scoring, or a model
    load (every function)."""
    names = [Path(f).relative_to(ROOT).as_posix() for f in origin.files]
    if "training/publish.py" in names:
        return [PUBLISHER]
    if names[0] == STATE_MACHINE_RUNNER:
        return [STATE_MACHINE]
    if "chalicelib/batch/jobs.py" in names:
        return [policy.API_FUNCTION]
    if "chalicelib/batch/fanout.py" in names:
        return [policy.FANOUT_FUNCTION]
    if any(n.startswith("chalicelib/batch/") for n in names):
        return [policy.BATCH_FUNCTION]
    return list(policy.FUNCTIONS)


def deployment_env(origin: Origin) -> dict[str, str]:
    """The environment a stage would need to give the code the settings it ran with."""
    env = {
        "ARTIFACTS_URI": "s3://audit-no-artifacts/models",
        "INPUT_BUCKET": "audit-no-input",
        "INPUT_PREFIX": "incoming/",
        "OUTPUT_BUCKET": "audit-no-output",
        "OUTPUT_PREFIX": "predictions/",
    }
    if origin.store is not None:
        env["ARTIFACTS_URI"] = f"s3://{origin.store.bucket}/{origin.store.prefix}"
    if origin.settings is not None:
        env |= {
            "INPUT_BUCKET": origin.settings.input_bucket,
            "INPUT_PREFIX": origin.settings.input_prefix,
            "OUTPUT_BUCKET": origin.settings.output_bucket,
            "OUTPUT_PREFIX": origin.settings.output_prefix,
        }
    return env


def required(call: Call) -> list[tuple[str, str]]:
    """(IAM action, resource ARN) pairs the call needs; KeyError for an operation not mapped yet."""
    if call.operation in BUCKET_ACTIONS:
        return [(action, f"arn:aws:s3:::{call.bucket}") for action in BUCKET_ACTIONS[call.operation]]
    arn = f"arn:aws:s3:::{call.bucket}/{call.key}"
    actions = [*OBJECT_ACTIONS[call.operation]]
    for param in call.extra_params:
        deleting = param == "VersionId" and call.operation == "DeleteObject"
        actions.append("s3:DeleteObjectVersion" if deleting else PARAMETER_ACTIONS[param])
    return [(action, arn) for action in actions]


def violations(calls: Iterable[Call]) -> list[str]:
    """One line per call some policy that must allow it does not."""
    problems = []
    for call in calls:
        where = f"{call.test}: {call.operation} s3://{call.bucket}/{call.key or ''}"
        if call.origin.store is None and call.origin.settings is None:
            problems.append(f"{where}: no S3Store or BatchSettings on the stack, so no deployment to check against")
            continue
        try:
            needs = required(call)
            deployment = policy.Deployment.from_env(deployment_env(call.origin), stage="audit")
        except KeyError:
            problems.append(f"{where}: no IAM mapping for {call.operation}; add it to tests/s3_audit.py")
            continue
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        for principal in principals(call.origin):
            if principal == PUBLISHER:
                doc = policy.publisher_policy(deployment)
            elif principal == STATE_MACHINE:
                doc = policy.state_machine_policy(deployment, AUDIT_FUNCTION_ARN)
            else:
                doc = policy.function_policy(deployment, principal)
            problems += [
                f"{where}: {principal} may not {action} on {arn}"
                for action, arn in needs
                if not policy.allows(doc, action, arn)
            ]
    return problems


def summary(calls: list[Call]) -> str:
    counts = Counter(f"{'/'.join(principals(c.origin))} {c.operation}" for c in calls)
    return ", ".join(f"{name} x{n}" for name, n in sorted(counts.items()))


RECORDER = Recorder()


def _attach_on_create(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_client(self: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        if client.meta.service_model.service_name == "s3":
            RECORDER.attach(client)
        return client

    return create_client


def _carry_origin(original: Callable[..., Any]) -> Callable[..., Any]:
    """Thread-pool tasks (boto3's managed transfers) inherit the submitting stack's origin."""

    def submit(self: concurrent.futures.ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any):
        origin = origin_of(sys._getframe(1))

        def run(*a: Any, **kw: Any) -> Any:
            _inherited.origin = origin
            try:
                return fn(*a, **kw)
            finally:
                _inherited.origin = None

        return original(self, run, *args, **kwargs)

    return submit


class AuditItem(pytest.Item):
    """The check, as a test of its own so that it can fail and shows up in the report."""

    def runtest(self) -> None:
        calls = list(RECORDER.calls)
        assert calls, "the code made no S3 call during the end-to-end tests: is the recording hook working?"
        problems = violations(calls)
        assert not problems, "S3 calls the IAM policies would deny:\n  " + "\n  ".join(problems)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, "every S3 call the code made is allowed by its IAM policy"


def pytest_configure(config: pytest.Config) -> None:
    patcher = pytest.MonkeyPatch()
    patcher.setattr(
        botocore.session.Session, "create_client", _attach_on_create(botocore.session.Session.create_client)
    )
    patcher.setattr(
        concurrent.futures.ThreadPoolExecutor, "submit", _carry_origin(concurrent.futures.ThreadPoolExecutor.submit)
    )
    patcher.setattr(S3Reader, "get", RECORDER.wrap_reader_get(S3Reader.get))
    config.add_cleanup(patcher.undo)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, items: list[pytest.Item]) -> None:
    if any(item.nodeid.startswith(END_TO_END) and "s3_server" in getattr(item, "fixturenames", ()) for item in items):
        path = Path(__file__)
        nodeid = f"{path.relative_to(ROOT).as_posix()}::s3_audit"
        items.append(AuditItem.from_parent(session, name="s3_audit", path=path, nodeid=nodeid))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RECORDER.calls:
        terminalreporter.write_line(f"s3 audit: {len(RECORDER.calls)} calls by the code: {summary(RECORDER.calls)}")
