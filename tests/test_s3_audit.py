"""The S3 audit itself: it attributes calls to the code, follows thread pools, and can fail.

Why: an audit that records nothing, or approves everything, would pass silently.
"""

from __future__ import annotations

import concurrent.futures

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.artifacts import S3Store
from chalicelib.batch.settings import BatchSettings
from chalicelib.s3_get import Credentials, S3Reader
from tests import s3_audit
from tests.s3_audit import HANDLER_ID, ROOT, Call, Origin, Recorder, violations

STORE = S3Store(None, "art", "models")
SETTINGS = BatchSettings("in", "incoming/", ".csv", "out", "predictions/")
BATCH_FILE = str(ROOT / "chalicelib" / "batch" / "handler.py")
LOADER_FILE = str(ROOT / "chalicelib" / "artifacts.py")
PUBLISH_FILE = str(ROOT / "training" / "publish.py")

# Compiled under the batch handler's name, so its frames look like the batch code's to the recorder.
PROBE = """
def probe(client, store, settings, executor):
    client.delete_object(Bucket=settings.output_bucket, Key=settings.output_prefix + "x.predictions.csv")
    executor.submit(client.put_object, Bucket=store.bucket, Key=store.key("LATEST"), Body=b"v").result()
"""


def call(operation: str, bucket: str, key: str | None, *files: str, extra: tuple[str, ...] = (), **origin) -> Call:
    return Call("t", operation, bucket, key, extra, Origin(files, **origin))


def test_calls_the_policies_allow_pass() -> None:
    assert not violations(
        [
            call("GetObject", "art", "models/LATEST", LOADER_FILE, store=STORE),
            call("GetObject", "art", "models/v/model.txt", LOADER_FILE, BATCH_FILE, store=STORE, settings=SETTINGS),
            call("GetObject", "in", "incoming/a.csv", BATCH_FILE, settings=SETTINGS),
            call("CreateMultipartUpload", "out", "predictions/a.predictions.csv", BATCH_FILE, settings=SETTINGS),
            call("AbortMultipartUpload", "out", "predictions/a.predictions.csv", BATCH_FILE, settings=SETTINGS),
            call("DeleteObject", "out", "predictions/a.error.json", BATCH_FILE, settings=SETTINGS),
            call("PutObject", "art", "models/LATEST", PUBLISH_FILE, LOADER_FILE, store=STORE),
        ]
    )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (call("PutObject", "art", "models/LATEST", LOADER_FILE, store=STORE), "api_handler may not s3:PutObject"),
        (call("GetObject", "art", "other/LATEST", LOADER_FILE, store=STORE), "may not s3:GetObject"),
        (call("GetObject", "in", "incoming-evil/a.csv", BATCH_FILE, settings=SETTINGS), "may not s3:GetObject"),
        (call("PutObject", "in", "incoming/a.csv", BATCH_FILE, settings=SETTINGS), "may not s3:PutObject"),
        (call("PutObject", "out", "predictions/a", BATCH_FILE, extra=("ACL",), settings=SETTINGS), "PutObjectAcl"),
        (call("DeleteObject", "out", "predictions/a", BATCH_FILE, extra=("VersionId",), settings=SETTINGS), "Version"),
        (call("HeadObject", "out", "predictions/a", BATCH_FILE, settings=SETTINGS), "may not s3:GetObject"),
        (call("ListObjectsV2", "art", None, LOADER_FILE, store=STORE), "may not s3:ListBucket on arn:aws:s3:::art"),
        (call("CopyObject", "out", "predictions/a", BATCH_FILE, settings=SETTINGS), "no IAM mapping for CopyObject"),
        (call("GetObject", "art", "models/LATEST", LOADER_FILE), "no S3Store or BatchSettings"),
        (call("GetObject", "art", "models/LATEST", BATCH_FILE, settings=SETTINGS), "may not s3:GetObject"),
    ],
)
def test_calls_the_policies_deny_are_reported(bad: Call, message: str) -> None:
    problems = violations([bad])
    assert problems
    assert message in problems[0]


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch):
    """A client answered locally, reporting to its own recorder only (not the session's audit)."""
    monkeypatch.setattr(
        concurrent.futures.ThreadPoolExecutor,
        "submit",
        s3_audit._carry_origin(concurrent.futures.ThreadPoolExecutor.submit),
    )
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    client.meta.events.unregister("before-parameter-build.s3", unique_id=HANDLER_ID)
    recorder = Recorder()
    recorder.attach(client)
    with Stubber(client) as stubber:
        yield client, stubber, recorder


def test_records_the_codes_calls_across_thread_pools_and_catches_a_bad_one(stubbed) -> None:
    client, stubber, recorder = stubbed
    stubber.add_response("delete_object", {})
    stubber.add_response("put_object", {})
    namespace: dict = {}
    exec(compile(PROBE, BATCH_FILE, "exec"), namespace)
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        namespace["probe"](client, STORE, SETTINGS, executor)
    assert [(c.operation, c.bucket, c.key) for c in recorder.calls] == [
        ("DeleteObject", "out", "predictions/x.predictions.csv"),
        ("PutObject", "art", "models/LATEST"),
    ]
    assert all(c.origin.settings == SETTINGS and c.origin.store == STORE for c in recorder.calls)
    assert violations(recorder.calls) == [
        f"{recorder.calls[1].test}: PutObject s3://art/models/LATEST: "
        "score_uploaded_csv may not s3:PutObject on arn:aws:s3:::art/models/LATEST"
    ]


def test_ignores_calls_that_are_not_the_codes(stubbed) -> None:
    client, stubber, recorder = stubbed
    stubber.add_response("put_object", {})
    client.put_object(Bucket="anything", Key="set-up/data.csv", Body=b"x")
    assert recorder.calls == []


# Compiled under artifacts.py's name: a read through the store, and one that goes around its prefix.
READER_PROBE = """
def probe(store):
    store.read("LATEST")
    store.reader.get(store.bucket, "other/secret.json")
"""


def test_records_the_service_readers_gets_and_catches_one_outside_the_prefix(monkeypatch) -> None:
    recorder = Recorder()  # not the session's: the bad read must not fail the real audit
    monkeypatch.setattr(S3Reader, "get", recorder.wrap_reader_get(lambda reader, bucket, key: b"v"))
    store = S3Store(S3Reader("us-east-1", Credentials("x", "x"), "http://127.0.0.1:9"), "art", "models")
    namespace: dict = {}
    exec(compile(READER_PROBE, LOADER_FILE, "exec"), namespace)
    namespace["probe"](store)
    assert [(c.operation, c.bucket, c.key, c.origin.store) for c in recorder.calls] == [
        ("GetObject", "art", "models/LATEST", store),
        ("GetObject", "art", "other/secret.json", store),
    ]
    problems = violations(recorder.calls)
    assert len(problems) == 3  # every function loads the model (API, batch, fan-out task): none may read outside
    assert all("may not s3:GetObject on arn:aws:s3:::art/other/secret.json" in p for p in problems)


def test_the_reader_sends_s3_requests_only_through_the_audited_get() -> None:
    """A new public method on S3Reader would be an S3 operation the audit does not see."""
    public = {name for name in vars(S3Reader) if not name.startswith("_")}
    assert public == {"get", "url", "region_of", "from_environment"}
