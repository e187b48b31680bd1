"""The jobs API: score a CSV with nothing but HTTP (curl, Postman), no AWS CLI or console.

`POST /jobs` answers a job id and a presigned PUT URL for `<input_prefix>jobs/<id><input_suffix>`:
it expires, is signed for exactly the declared number of bytes and for `Content-Type: text/csv`,
so it uploads one file of that size into that key and nothing else. The upload's S3 event scores
it as any other (fanned out when large). `GET /jobs/{id}` derives the job's state from S3 alone,
no database: no upload yet (`waiting_for_upload`), an output or an error report for this very
upload (`done`, `failed`, with a presigned GET URL), or neither (`running`; a fanned-out run
that ended without either is `failed`, from its execution's status).

Runs in the API function, which must stay lean: only the standard library and boto3 (imported
when a jobs route is called), never numpy or the scorer.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.batch.settings import JOBS_FOLDER, BatchSettings, FanoutSettings, run_name

# S3's limit for one PUT; larger files are uploaded with the AWS CLI or SDK (multipart).
MAX_UPLOAD_BYTES = 5 * 1024**3
URL_SECONDS = 15 * 60
CSV_CONTENT_TYPE = "text/csv"
_JOB_ID = re.compile(r"[0-9a-f]{32}")

# An execution's status -> whether the run has ended without writing its result.
_ENDED = {"FAILED", "TIMED_OUT", "ABORTED"}


@dataclass(frozen=True)
class JobReply:
    status: int
    body: dict[str, Any]


def _problem(field: str, message: str) -> JobReply:
    return JobReply(400, {"error": "invalid job", "problems": [{"field": field, "message": message}]})


def input_key(settings: BatchSettings, job_id: str) -> str:
    return f"{settings.input_prefix}{JOBS_FOLDER}{job_id}{settings.input_suffix}"


def create_job(
    raw_body: bytes | None, settings: BatchSettings, s3: Any, new_id: Callable[[], str] | None = None
) -> JobReply:
    """`{"bytes": <size of the CSV>}` -> the job and where to PUT the file."""
    try:
        body = json.loads(raw_body or b"")
    except ValueError:
        return _problem("body", 'must be a JSON object like {"bytes": 123456}')
    size = body.get("bytes") if isinstance(body, dict) else None
    if isinstance(size, bool) or not isinstance(size, int):
        return _problem("bytes", "required: the size of the CSV file in bytes, an integer")
    if not 0 < size <= MAX_UPLOAD_BYTES:
        return _problem("bytes", f"must be between 1 and {MAX_UPLOAD_BYTES:,} (one PUT), got {size:,}")
    job_id = (new_id or (lambda: uuid.uuid4().hex))()
    url = s3.generate_presigned_url(
        "put_object",
        Params={
            "Bucket": settings.input_bucket,
            "Key": input_key(settings, job_id),
            "ContentType": CSV_CONTENT_TYPE,
            "ContentLength": size,
        },
        ExpiresIn=URL_SECONDS,
        HttpMethod="PUT",
    )
    upload = {"method": "PUT", "url": url, "headers": {"Content-Type": CSV_CONTENT_TYPE}, "bytes": size}
    body = {"job_id": job_id, "state": "waiting_for_upload", "upload": upload, "expires_in": URL_SECONDS}
    return JobReply(201, body | {"status": f"/jobs/{job_id}"})


def job_status(
    job_id: str,
    settings: BatchSettings,
    fanout: FanoutSettings,
    s3: Any,
    describe_run: Callable[[str], str | None] | None = None,
) -> JobReply:
    """The job's state from its objects; `describe_run(run name)` gives a fanned-out run's execution status."""
    if not _JOB_ID.fullmatch(job_id):
        return _problem("job_id", "must be the 32 hexadecimal characters POST /jobs returned")
    key = input_key(settings, job_id)
    upload = _head(s3, settings.input_bucket, key)
    body: dict[str, Any] = {"job_id": job_id}
    if upload is None:
        return JobReply(200, body | {"state": "waiting_for_upload"})
    etag = upload["ETag"].strip('"')
    body["bytes"] = upload["ContentLength"]
    output_key, report_key = settings.output_key(key), settings.error_report_key(key)
    run = run_name(settings.input_bucket, key, etag)
    output = _head(s3, settings.output_bucket, output_key)
    if output is not None and output.get("Metadata", {}).get("source-etag") == etag:
        totals = _json(s3, settings.output_bucket, settings.run_prefix(run) + "summary.json") or {}
        counts = {name: totals.get(name) for name in ("rows", "rows_with_errors")}
        return JobReply(200, body | {"state": "done", **counts, "output_url": _url(s3, settings, output_key)})
    report = _json(s3, settings.output_bucket, report_key)
    if report is not None and report.get("input_etag") == etag:
        failed = {"state": "failed", "error": report.get("error"), "report_url": _url(s3, settings, report_key)}
        return JobReply(200, body | failed)
    status = describe_run(run) if describe_run is not None and fanout.fans_out(upload["ContentLength"]) else None
    if status in _ENDED:
        return JobReply(200, body | {"state": "failed", "error": f"the scoring run ended {status} without a result"})
    return JobReply(200, body | {"state": "running"})


def _url(s3: Any, settings: BatchSettings, key: str) -> str:
    params = {"Bucket": settings.output_bucket, "Key": key}
    return s3.generate_presigned_url("get_object", Params=params, ExpiresIn=URL_SECONDS)


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _json(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        with s3.get_object(Bucket=bucket, Key=key)["Body"] as body:
            return json.loads(body.read())
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def presigning_client() -> Any:
    """An S3 client that signs URLs with SigV4 (which signs Content-Length and Content-Type into a PUT URL)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(signature_version="s3v4"))


def execution_describer(function_arn: str, state_machine_name: str) -> Callable[[str], str | None]:
    """`describe_run` for Lambda: the run's execution ARN follows from the function's ARN and the run's name."""
    import boto3
    from botocore.exceptions import ClientError

    region, account = function_arn.split(":")[3:5]

    def describe(run: str) -> str | None:
        arn = f"arn:aws:states:{region}:{account}:execution:{state_machine_name}:{run}"
        client = boto3.client("stepfunctions", region_name=region)  # only for a large upload still running
        try:
            return client.describe_execution(executionArn=arn)["status"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
                return None
            raise

    return describe
