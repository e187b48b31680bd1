"""The steps of a fanned-out run, as the state machine's Lambda tasks call them (see deploy/state_machine.py).

- `start`: create the output's multipart upload (the metadata of the single-function path).
- `score_range`: one Map item. Read the header and the range with ranged GETs (If-Match on the
  upload's ETag), score them with `score_csv_stream`, exactly as one function would, and upload
  the range's output as part `index + 1`. Only range 0 writes the output header. Its summary
  (rows, errors, the part's ETag, the `"` count) goes to S3, not into the state's payload.
- `finish`: check the ranges met on record boundaries (quote counts), that no range found the file
  unscorable and that the input is still the same upload, then complete the upload in part order
  and write the run's totals. Boundaries inside a quoted field: abort, and `score_whole` runs.
- `abort`: any failure. Abort the upload (no partial output) and write the error report.
- `score_whole`: the single-function path, for files with newlines inside quoted fields.

Nothing here holds state between steps: each reads what it needs from S3 and the run's input.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any
from urllib.parse import quote

from chalicelib.batch.cells import Layout
from chalicelib.batch.framing import BatchFileError, Readable
from chalicelib.batch.handler import EXPLAIN_METADATA, Superseded, score_s3_object, write_error_report
from chalicelib.batch.ranges import ByteRange, Run, misframed_boundaries
from chalicelib.batch.s3io import ReadAhead
from chalicelib.batch.scoring import score_csv_stream
from chalicelib.batch.settings import BatchSettings
from chalicelib.logs import log_event
from chalicelib.predictor import Predictor, load_predictor

# A range's output is kept in memory up to this size, then in /tmp (Lambda's /tmp is 512 MiB at least).
SPOOL_BYTES = 64 * 1024 * 1024
# Range summaries read at once by `finish`.
SUMMARY_READS = 16
STEPS = ("start", "score_range", "finish", "abort", "score_whole")


class StepError(ValueError):
    """An event that is not a step of ours: the state machine and this code disagree."""


class ModelVersions:
    """Predictors by version, loaded once per container: every range of a run uses the run's version."""

    def __init__(self, loader: Callable[[str], Predictor]) -> None:
        self._loader = loader
        self._loaded: dict[str, Predictor] = {}
        self._lock = threading.Lock()

    def get(self, version: str) -> Predictor:
        with self._lock:
            if version not in self._loaded:
                self._loaded[version] = self._loader(version)
            return self._loaded[version]


def metadata(run: Run) -> dict[str, str]:
    """The output object's metadata, as the single-function path writes it."""
    return {
        "source": quote(f"s3://{run.bucket}/{run.key}"),
        "source-etag": run.etag.strip('"'),
        "model-version": run.model_version,
    }


def run_step(
    event: dict[str, Any], models: ModelVersions, settings: BatchSettings, client: Any
) -> dict[str, Any] | None:
    """Dispatch one state machine task: `{"step": ..., "run": {...}, ...}`."""
    step = event.get("step") if isinstance(event, dict) else None
    if step not in STEPS or not isinstance(event.get("run"), dict):
        raise StepError(f"not a fan-out step: expected 'step' in {STEPS} and a 'run' object")
    run = Run.from_dict(event["run"])
    upload_id = (event["run"].get("upload") or {}).get("upload_id")
    if step == "start":
        return start(run, client)
    if step == "score_range":
        score_range(run, upload_id, ByteRange.from_dict(event["range"]), models.get(run.model_version), client)
        return None
    if step == "finish":
        return finish(run, upload_id, settings, client)
    if step == "abort":
        return abort(run, upload_id, _describe(event["run"].get("error")), settings, client)
    return score_whole(run, models.get(run.model_version), settings, client)


def start(run: Run, client: Any) -> dict[str, Any]:
    reply = client.create_multipart_upload(
        Bucket=run.output_bucket, Key=run.output_key, ContentType="text/csv; charset=utf-8", Metadata=metadata(run)
    )
    log_event("fanout_started", run=run.name, input=f"s3://{run.bucket}/{run.key}", ranges=run.ranges)
    return {"upload_id": reply["UploadId"]}


class _Counting:
    """A stream that counts the `"` bytes read through it."""

    def __init__(self, source: Readable) -> None:
        self.source, self.quotes = source, 0

    def read(self, size: int, /) -> bytes:
        data = self.source.read(size)
        self.quotes += data.count(b'"')
        return data


class _HeaderThen:
    """The header record, then a range's bytes: what `score_csv_stream` reads for a range past the first."""

    def __init__(self, header: bytes, rest: Readable) -> None:
        self.header, self.rest = header, rest

    def read(self, size: int, /) -> bytes:
        if self.header:
            data, self.header = self.header, b""
            return data
        return self.rest.read(size)


class _WithoutHeader:
    """Passes output on, except the output header, which only range 0's part carries."""

    def __init__(self, sink: IO[bytes], header: bytes) -> None:
        self.sink, self.header = sink, header

    def write(self, data: bytes) -> None:
        if self.header:
            if data != self.header:
                raise RuntimeError("the scorer's first output was not the output header")
            self.header = b""
            return
        self.sink.write(data)


def score_range(run: Run, upload_id: str | None, byte_range: ByteRange, predictor: Predictor, client: Any) -> None:
    """Score one range into its part; a file-level problem (BatchFileError) is summarised, not raised."""
    if upload_id is None:
        raise StepError("score_range needs the run's upload id")
    if predictor.version != run.model_version:
        raise StepError(f"loaded model {predictor.version}, the run uses {run.model_version}")
    summary: dict[str, Any] = {"index": byte_range.index, "rows": 0, "rows_with_errors": 0}
    got = _get(client, run, byte_range.start, byte_range.end)
    body = got["Body"]
    # The same question as the single-function path asks (S3 metadata explain=true): the same bytes out.
    explain = got.get("Metadata", {}).get(EXPLAIN_METADATA, "").lower() == "true"
    counted = _Counting(body)
    ahead: ReadAhead | None = None
    with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as out, ThreadPoolExecutor(1, "range-read") as reads:
        try:
            if byte_range.index == 0:
                source: Readable = counted
                sink: Any = out
            else:
                header = _read_all(_get(client, run, 0, run.header_end)["Body"])
                source = _HeaderThen(header, counted)
                sink = _WithoutHeader(out, Layout.of(header.removesuffix(b"\n")).output_header(explain))
            ahead = ReadAhead(source, reads)
            scored = score_csv_stream(ahead, sink.write, predictor, explain=explain)
            summary |= {"rows": scored.rows, "rows_with_errors": scored.rows_with_errors}
        except BatchFileError as exc:
            summary["error"] = str(exc)
            if ahead is not None and ahead.next is not None:
                ahead.next.result()  # the block read ahead is counted before the rest is read here
            while counted.read(8 * 1024 * 1024):  # the rest of the range still counts for the boundary check
                pass
        finally:
            body.close()
        summary["quotes"] = counted.quotes
        if "error" not in summary:
            size = out.tell()
            out.seek(0)
            part = client.upload_part(
                Bucket=run.output_bucket,
                Key=run.output_key,
                UploadId=upload_id,
                PartNumber=byte_range.index + 1,
                Body=out,
                ContentLength=size,
            )
            summary["part"] = {"PartNumber": byte_range.index + 1, "ETag": part["ETag"]}
    _put_json(client, run.output_bucket, run.range_summary_key(byte_range.index), summary)
    log_event("fanout_range", run=run.name, index=byte_range.index, rows=summary["rows"], error=summary.get("error"))


def finish(run: Run, upload_id: str | None, settings: BatchSettings, client: Any) -> dict[str, Any]:
    """Complete the output from the ranges' parts, in order, or say why not (`outcome`)."""
    if upload_id is None:
        raise StepError("finish needs the run's upload id")
    with ThreadPoolExecutor(SUMMARY_READS, "range-summaries") as pool:
        keys = [run.range_summary_key(i) for i in range(run.ranges)]
        summaries = list(pool.map(lambda key: _get_json(client, run.output_bucket, key), keys))
    misframed = misframed_boundaries([s["quotes"] for s in summaries])
    if misframed:
        _abort_upload(client, run, upload_id)
        log_event("fanout_misframed", run=run.name, ranges=misframed[:10])
        return {"outcome": "misframed"}
    failed = next((s for s in summaries if "error" in s), None)
    if failed is not None:
        abort(run, upload_id, failed["error"], settings, client)
        return {"outcome": "failed", "error": failed["error"]}
    try:
        _head_same(client, run)
    except Superseded as exc:
        _abort_upload(client, run, upload_id)
        log_event("fanout_superseded", run=run.name, reason=str(exc))
        return {"outcome": "superseded"}
    client.complete_multipart_upload(
        Bucket=run.output_bucket,
        Key=run.output_key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [s["part"] for s in summaries]},
    )
    client.delete_object(Bucket=run.output_bucket, Key=run.report_key)
    totals = {
        "input": f"s3://{run.bucket}/{run.key}",
        "input_etag": run.etag.strip('"'),
        "output": f"s3://{run.output_bucket}/{run.output_key}",
        "model_version": run.model_version,
        "ranges": run.ranges,
        "rows": sum(s["rows"] for s in summaries),
        "rows_with_errors": sum(s["rows_with_errors"] for s in summaries),
    }
    _put_json(client, run.output_bucket, run.summary_key, totals)
    log_event("batch_file", input=totals["input"], outcome="scored", rows=totals["rows"], run=run.name)
    return {"outcome": "scored", "rows": totals["rows"], "rows_with_errors": totals["rows_with_errors"]}


def abort(run: Run, upload_id: str | None, error: str, settings: BatchSettings, client: Any) -> dict[str, Any]:
    """No partial output: the upload's parts are dropped, and the error report takes the output's place."""
    if upload_id is not None:
        _abort_upload(client, run, upload_id)
    try:
        _head_same(client, run)
    except Superseded as exc:
        log_event("fanout_superseded", run=run.name, reason=str(exc))
        return {"outcome": "superseded"}
    write_error_report(client, settings, run.bucket, run.key, run.report_key, run.output_key, metadata(run), error)
    where = f"s3://{run.bucket}/{run.key}"
    log_event("batch_file", logging.ERROR, input=where, outcome="failed", run=run.name, reason=error)
    return {"outcome": "failed", "error": error}


def score_whole(run: Run, predictor: Predictor, settings: BatchSettings, client: Any) -> dict[str, Any]:
    """One function scores the whole file (its ranges did not meet on record boundaries)."""
    try:
        result = score_s3_object(run.bucket, run.key, predictor, settings, client, etag=run.etag)
    except Superseded as exc:
        return {"outcome": "superseded", "error": str(exc)}
    return {"outcome": result.status, "rows": result.rows, "rows_with_errors": result.rows_with_errors}


def _describe(error: Any) -> str:
    """A Catch's `{"Error", "Cause"}` as the report's reason; a Lambda error's Cause is its JSON."""
    if not isinstance(error, dict):
        return "the fan-out failed"
    cause = str(error.get("Cause", ""))
    try:
        parsed = json.loads(cause)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        cause = f"{parsed.get('errorType', '')}: {parsed.get('errorMessage', '')}"
    return f"a step of the fan-out failed ({error.get('Error', '?')}): {cause}"[:2000]


def _get(client: Any, run: Run, start: int, end: int) -> dict[str, Any]:
    return client.get_object(Bucket=run.bucket, Key=run.key, Range=f"bytes={start}-{end - 1}", IfMatch=run.etag)


def _read_all(body: Any) -> bytes:
    with body:
        return body.read()


def _head_same(client: Any, run: Run) -> None:
    from botocore.exceptions import ClientError

    try:
        etag = client.head_object(Bucket=run.bucket, Key=run.key)["ETag"]
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
            raise Superseded(f"s3://{run.bucket}/{run.key} was deleted while it was scored") from None
        raise
    if etag != run.etag:
        raise Superseded(f"s3://{run.bucket}/{run.key} was replaced while it was scored")


def _abort_upload(client: Any, run: Run, upload_id: str) -> None:
    from botocore.exceptions import ClientError

    try:
        client.abort_multipart_upload(Bucket=run.output_bucket, Key=run.output_key, UploadId=upload_id)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) != "NoSuchUpload":  # aborted by an earlier step
            raise


def _put_json(client: Any, bucket: str, key: str, value: dict[str, Any]) -> None:
    body = json.dumps(value, indent=2, sort_keys=True).encode() + b"\n"
    client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def _get_json(client: Any, bucket: str, key: str) -> dict[str, Any]:
    return json.loads(_read_all(client.get_object(Bucket=bucket, Key=key)["Body"]))


_lambda_models = ModelVersions(lambda version: load_predictor(os.environ["ARTIFACTS_URI"], version))
_lambda_s3: list[Any] = []


def run_lambda_step(event: dict[str, Any], settings: BatchSettings) -> dict[str, Any] | None:
    """The `fanout_task` function: one S3 client and the loaded model versions live as long as the container."""
    if not _lambda_s3:
        import boto3

        _lambda_s3.append(boto3.client("s3"))
    return run_step(event, _lambda_models, settings, _lambda_s3[0])
