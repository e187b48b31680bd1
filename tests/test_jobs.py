"""The jobs API: create a job, PUT the file to the presigned URL as curl would, poll, download the result.

Over real HTTP against `chalice local` and the moto server; the upload's S3 event (which `chalice local`
does not deliver) is handed to the real handler, as Lambda would, and fans out on the local runner. Then
each state again in-process, so the S3 audit checks the API function's calls against its policy.
moto does not verify signatures, so what the URL is bound to is checked on the URL itself.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.batch import jobs
from chalicelib.batch.ranges import MIN_PART_BYTES
from chalicelib.batch.settings import BatchSettings, FanoutSettings
from chalicelib.predictor import Predictor, load_predictor
from testkit.fanout import csv_of_rows, fanout_rig
from testkit.serve import deliver_new_uploads
from tests.conftest import serve_project

ROWS = 40_000


@pytest.fixture(scope="module")
def predictor(artifacts_dir: Path) -> Predictor:
    return load_predictor(str(artifacts_dir))


@pytest.fixture(scope="module")
def job_settings(s3_server) -> BatchSettings:
    s3_server.start()
    s3 = s3_server.client()
    name = f"jobs-{uuid.uuid4().hex[:12]}"
    for bucket in (name, name + "-out"):
        s3.create_bucket(Bucket=bucket)
    return BatchSettings(name, "incoming/", ".csv", name + "-out", "predictions/")


@pytest.fixture(scope="module")
def api(s3_server, job_settings: BatchSettings, artifacts_dir: Path, tmp_path_factory) -> Iterator[str]:
    """`chalice local` whose local stage uses the test buckets on the moto server."""
    buckets = {"INPUT_BUCKET": job_settings.input_bucket, "OUTPUT_BUCKET": job_settings.output_bucket}
    project = tmp_path_factory.mktemp("jobs-project")
    with serve_project(project, artifacts_dir, s3_server.child_env(os.environ), **buckets) as url:
        yield url


def call(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            status, data = reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data


def post_job(api: str, size: int) -> dict[str, Any]:
    status, body = call(
        "POST", api + "/jobs", json.dumps({"bytes": size}).encode(), {"Content-Type": "application/json"}
    )
    assert status == 201, body
    return body


def test_a_job_from_create_to_download_over_http(api, s3, job_settings, predictor, synthetic_csvs):
    data = csv_of_rows(synthetic_csvs[0].read_bytes(), ROWS)
    job = post_job(api, len(data))
    job_id = job["job_id"]
    assert call("GET", f"{api}/jobs/{job_id}") == (200, {"job_id": job_id, "state": "waiting_for_upload"})

    # curl -T houses.csv -H 'Content-Type: text/csv' "$url"
    upload = job["upload"]
    status, _ = call(upload["method"], upload["url"], data, upload["headers"])
    assert status == 200
    status, body = call("GET", f"{api}/jobs/{job_id}")
    assert (status, body["state"], body["bytes"]) == (200, "running", len(data))

    # S3's event for the upload, to the real handler (fanned out in ranges on the local runner).
    rig = fanout_rig(s3, job_settings, predictor, MIN_PART_BYTES, threads=2)
    key = jobs.input_key(job_settings, job_id)
    etag = s3.head_object(Bucket=job_settings.input_bucket, Key=key)["ETag"]
    (result,) = rig.deliver(key, etag, len(data))
    assert result.status == "fanned_out"

    status, body = call("GET", f"{api}/jobs/{job_id}")
    assert (status, body["state"], body["rows"]) == (200, "done", ROWS), body
    assert body["rows_with_errors"] == 0
    status, output = call("GET", body["output_url"])
    assert status == 200 and output == rig.output(key)
    assert output.count(b"\n") == ROWS + 1


def test_a_file_that_cannot_be_scored_fails_with_its_report(api, s3, job_settings, predictor):
    data = b"not,a,house\n1,2,3\n"
    job = post_job(api, len(data))
    upload = job["upload"]
    assert call("PUT", upload["url"], data, upload["headers"])[0] == 200
    key = jobs.input_key(job_settings, job["job_id"])
    rig = fanout_rig(s3, job_settings, predictor, MIN_PART_BYTES, threads=2)
    (result,) = rig.deliver(key, s3.head_object(Bucket=job_settings.input_bucket, Key=key)["ETag"], len(data))
    assert result.status == "fanned_out"  # the rig fans out every file: here one range

    status, body = call("GET", f"{api}/jobs/{job['job_id']}")
    assert (status, body["state"]) == (200, "failed")
    assert "missing column(s)" in body["error"]
    status, report = call("GET", body["report_url"])
    assert status == 200 and report["error"] == body["error"]


def test_the_upload_url_is_bound_to_key_size_type_and_time(api):
    job = post_job(api, 12345)
    url = urlsplit(job["upload"]["url"])
    query = parse_qs(url.query)
    assert url.path.endswith(f"/incoming/jobs/{job['job_id']}.csv")
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    assert query["X-Amz-Expires"] == [str(jobs.URL_SECONDS)]
    assert job["upload"]["headers"] == {"Content-Type": "text/csv"} and job["expires_in"] == 900


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (b"", "body", "JSON object"),
        (b"[1]", "bytes", "required"),
        (b'{"bytes": "12"}', "bytes", "integer"),
        (b'{"bytes": true}', "bytes", "integer"),
        (b'{"bytes": 0}', "bytes", "between 1 and"),
        (b'{"bytes": 6000000000}', "bytes", "between 1 and"),
    ],
)
def test_bad_job_requests_are_400_naming_the_field(api, body: bytes, field: str, message: str):
    status, reply = call("POST", api + "/jobs", body, {"Content-Type": "application/json"})
    assert status == 400
    (problem,) = reply["problems"]
    assert problem["field"] == field and message in problem["message"]


@pytest.mark.parametrize("job_id", ["x", "0123456789ABCDEF0123456789ABCDEF", "0" * 33, "..%2F..%2Fsecret"])
def test_bad_job_ids_are_400(api, job_id: str):
    status, reply = call("GET", f"{api}/jobs/{job_id}")
    assert status == 400 and reply["problems"][0]["field"] == "job_id"


def test_every_state_in_process_with_the_api_functions_calls(s3, job_settings, predictor, synthetic_csvs):
    """The same states through `job_status` itself, so the S3 audit sees (and checks) the API's calls."""
    fanout = FanoutSettings(1, MIN_PART_BYTES, 2, "house-prices-local-fanout")
    rig = fanout_rig(s3, job_settings, predictor, MIN_PART_BYTES, threads=2, failing_range=0)
    job_id = uuid.uuid4().hex
    key = jobs.input_key(job_settings, job_id)

    def describe(run: str) -> str | None:
        execution = rig.runner.executions.get(run)
        return execution.status if execution else None

    def state() -> str:
        reply = jobs.job_status(job_id, job_settings, fanout, s3, describe)
        assert reply.status == 200
        return reply.body["state"]

    assert state() == "waiting_for_upload"
    data = csv_of_rows(synthetic_csvs[0].read_bytes(), 20_000)
    etag = rig.upload(key, data)
    assert state() == "running"
    rig.deliver(key, etag, len(data))  # range 0's worker fails: aborted, error report
    assert state() == "failed"
    s3.delete_object(Bucket=job_settings.output_bucket, Key=job_settings.error_report_key(key))
    assert state() == "failed"  # the run FAILED, even without its report


def test_the_local_event_loop_delivers_each_upload_once(s3, job_settings):
    events: list[dict] = []
    seen: set[tuple[str, str]] = set()
    key = jobs.input_key(job_settings, uuid.uuid4().hex)
    s3.put_object(Bucket=job_settings.input_bucket, Key=key, Body=b"a,b\n1,2\n")
    deliver_new_uploads(s3, job_settings, seen, events.append)
    deliver_new_uploads(s3, job_settings, seen, events.append)
    s3.put_object(Bucket=job_settings.input_bucket, Key=key, Body=b"a,b\n1,3\n")  # replaced: a new upload
    deliver_new_uploads(s3, job_settings, seen, events.append)
    mine = [e["Records"][0]["s3"]["object"] for e in events if e["Records"][0]["s3"]["object"]["key"] == key]
    assert len(mine) == 2 and mine[0]["eTag"] != mine[1]["eTag"] and mine[0]["size"] == 8
