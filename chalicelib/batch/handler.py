"""The S3 event: which uploaded objects to score, and exactly one current result for each.

S3 delivers events at least once and in no particular order, sends a test event when a
notification is configured, and may tell of an object that has since been replaced or
deleted. So each record is checked before and after scoring:

- the object is read with `If-Match` on the event's ETag: if it was replaced or deleted since,
  the event is stale, and is skipped with a log line (the newer upload has its own event);
- just before the output appears, the input's ETag is read again: an upload that replaced it
  while this one was scored wins, and this output is discarded;
- the result is either `<path>.predictions.csv` or `<path>.error.json`, and the other, left by
  an earlier upload of the same key, is deleted, so nothing stale looks current.

A record that cannot be scored (another bucket, a key that is not ours) is logged and skipped;
one bad record never stops the others. S3 failing (anything unexpected) is raised after the
other records are done, so Lambda retries the event; the retry rewrites the same bytes.

An upload larger than the fan-out threshold is planned into byte ranges and handed to the
state machine instead (chalicelib.batch.ranges, chalicelib.batch.fanout).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote, unquote_plus

from chalicelib.batch.framing import BatchFileError
from chalicelib.batch.ranges import Starter, start_run
from chalicelib.batch.s3io import PART_BYTES, score_into_s3
from chalicelib.batch.settings import BatchSettings, FanoutSettings, OutputKeyError
from chalicelib.logs import log_event
from chalicelib.predictor import LazyPredictor, Predictor

# `aws s3 cp houses.csv s3://.../incoming/ --metadata explain=true` asks for contrib_<feature> columns.
EXPLAIN_METADATA = "explain"


class Superseded(Exception):
    """The object an event names was replaced or deleted after the event: nothing to do for it."""


@dataclass(frozen=True)
class Fanout:
    """When to fan out, and what starts the state machine."""

    settings: FanoutSettings
    starter: Starter


@dataclass(frozen=True)
class ObjectResult:
    """What became of one event record: `scored`, `failed` (error report), `skipped` (stale event),
    `ignored` (not an upload), `rejected` (not ours to score) or `fanned_out` (a run scores it;
    `error` then says if a run for this upload had started already)."""

    bucket: str
    key: str
    status: str
    output_key: str | None
    rows: int = 0
    rows_with_errors: int = 0
    error: str | None = None


def score_s3_event(
    event: dict[str, Any],
    model: LazyPredictor,
    settings: BatchSettings,
    s3_client: Any = None,
    request_id: str | None = None,
    fanout: Fanout | None = None,
) -> list[ObjectResult]:
    """Score every uploaded object an event names; see the module docstring."""
    settings.check()
    records = event.get("Records") if isinstance(event, dict) else None
    if not records:
        reason = "an s3:TestEvent" if isinstance(event, dict) and event.get("Event") == "s3:TestEvent" else "no Records"
        log_event("batch_event_ignored", request_id=request_id, reason=reason)
        return []
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3")
    results: list[ObjectResult] = []
    failure: Exception | None = None
    for record in records:
        try:
            results.append(_score_record(record, model, settings, s3_client, request_id, fanout))
        except Exception as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return results


def _score_record(
    record: Any,
    model: LazyPredictor,
    settings: BatchSettings,
    client: Any,
    request_id: str | None,
    fanout: Fanout | None,
) -> ObjectResult:
    try:
        name = str(record.get("eventName", ""))
        bucket = str(record["s3"]["bucket"]["name"])
        key = unquote_plus(str(record["s3"]["object"]["key"]))
        etag = record["s3"]["object"].get("eTag")
        size = int(record["s3"]["object"].get("size") or 0)
    except (AttributeError, KeyError, TypeError, ValueError):
        log_event("batch_file", logging.ERROR, request_id=request_id, outcome="rejected", reason="not an S3 record")
        return ObjectResult("", "", "rejected", None, error="not an S3 record")
    where = f"s3://{bucket}/{key}"
    if not name.startswith("ObjectCreated:"):
        log_event("batch_file", request_id=request_id, input=where, outcome="ignored", reason=f"event {name!r}")
        return ObjectResult(bucket, key, "ignored", None, error=f"event {name!r}")
    try:
        if bucket != settings.input_bucket:
            raise OutputKeyError(f"bucket {bucket!r} is not the input bucket {settings.input_bucket!r}")
        settings.output_key(key)
    except OutputKeyError as exc:
        report = _long_key_report(bucket, key, settings, client, str(exc))
        log_event("batch_file", logging.ERROR, request_id=request_id, input=where, outcome="rejected", reason=str(exc))
        return ObjectResult(bucket, key, "rejected", report, error=str(exc))
    try:
        predictor = model.get()
        if fanout is not None and etag and fanout.settings.fans_out(size):
            fanned = _fan_out(bucket, key, etag, size, predictor.version, settings, client, fanout, request_id)
            if fanned is not None:
                return fanned
        return score_s3_object(bucket, key, predictor, settings, client, etag=etag, request_id=request_id)
    except Superseded as exc:
        log_event("batch_file", request_id=request_id, input=where, outcome="skipped", reason=str(exc))
        return ObjectResult(bucket, key, "skipped", None, error=str(exc))
    except Exception as exc:
        log_event("batch_file", logging.ERROR, request_id=request_id, input=where, outcome="error", reason=repr(exc))
        raise


def _fan_out(
    bucket: str,
    key: str,
    etag: str,
    size: int,
    model_version: str,
    settings: BatchSettings,
    client: Any,
    fanout: Fanout,
    request_id: str | None,
) -> ObjectResult | None:
    """Start the upload's run; None when planning finds the file unscorable (one function then reports why)."""
    try:
        starting = partial(start_run, bucket, key, etag, size, model_version, settings, fanout.settings, client)
        run, started = _unless_gone(lambda: starting(fanout.starter), bucket, key)
    except BatchFileError:
        return None
    note = None if started else f"run {run.name} was started by an earlier delivery of this event"
    log_event(
        "batch_file",
        request_id=request_id,
        input=f"s3://{bucket}/{key}",
        outcome="fanned_out",
        run=run.name,
        ranges=run.ranges,
        started=started,
    )
    return ObjectResult(bucket, key, "fanned_out", run.output_key, error=note)


def _long_key_report(bucket: str, key: str, settings: BatchSettings, client: Any, reason: str) -> str | None:
    """For a key of ours whose output key would be too long: a report under a short deterministic key."""
    in_place = key.startswith(settings.input_prefix) and key.endswith(settings.input_suffix)
    if bucket != settings.input_bucket or not in_place or "longer than S3's" not in reason:
        return None
    report_key = settings.long_key_report(key)
    body = {"input": f"s3://{bucket}/{key}", "error": reason}
    client.put_object(
        Bucket=settings.output_bucket,
        Key=report_key,
        Body=json.dumps(body, indent=2, sort_keys=True).encode() + b"\n",
        ContentType="application/json",
    )
    return report_key


def score_s3_object(
    bucket: str,
    key: str,
    predictor: Predictor,
    settings: BatchSettings,
    s3_client: Any,
    part_bytes: int = PART_BYTES,
    *,
    etag: str | None = None,
    request_id: str | None = None,
) -> ObjectResult:
    """Score one uploaded CSV into its predictions object, or write its error report.

    With `etag` (the event's), raises Superseded when the object is no longer that upload.
    Output bytes depend only on the input and the model, so a redelivered event rewrites
    the same object.
    """
    start = time.perf_counter()
    output_key = settings.output_key(key)
    report_key = settings.error_report_key(key)
    source = _get_current(s3_client, bucket, key, etag)
    etag = source["ETag"]
    metadata = {
        "source": quote(f"s3://{bucket}/{key}"),
        "source-etag": etag.strip('"'),
        "model-version": predictor.version,
    }

    def still_current() -> None:
        _head_current(s3_client, bucket, key, etag)

    try:
        summary = score_into_s3(
            source["Body"],
            predictor,
            s3_client,
            settings.output_bucket,
            output_key,
            metadata,
            part_bytes,
            still_current,
            explain=source.get("Metadata", {}).get(EXPLAIN_METADATA, "").lower() == "true",
        )
    except BatchFileError as exc:
        still_current()
        write_error_report(s3_client, settings, bucket, key, report_key, output_key, metadata, str(exc))
        log_event(
            "batch_file",
            logging.ERROR,
            request_id=request_id,
            input=f"s3://{bucket}/{key}",
            outcome="failed",
            reason=str(exc),
            model_version=predictor.version,
            output=f"s3://{settings.output_bucket}/{report_key}",
        )
        return ObjectResult(bucket, key, "failed", report_key, error=str(exc))
    except Superseded:
        raise
    except Exception as exc:
        # S3 failing, or a bug: Lambda retries the event. Until a retry succeeds (and for good if
        # none does) the key's current result says so, instead of an earlier upload's predictions.
        reason = f"scoring failed and is retried by Lambda: {exc!r}"
        with contextlib.suppress(Exception):  # S3 may be what failed; the first error is the one to raise
            still_current()
            write_error_report(s3_client, settings, bucket, key, report_key, output_key, metadata, reason)
        raise
    finally:
        source["Body"].close()
    s3_client.delete_object(Bucket=settings.output_bucket, Key=report_key)
    log_event(
        "batch_file",
        request_id=request_id,
        input=f"s3://{bucket}/{key}",
        outcome="scored",
        rows=summary.rows,
        rows_with_errors=summary.rows_with_errors,
        model_version=predictor.version,
        output=f"s3://{settings.output_bucket}/{output_key}",
        seconds=round(time.perf_counter() - start, 3),
    )
    return ObjectResult(bucket, key, "scored", output_key, summary.rows, summary.rows_with_errors)


def write_error_report(
    client: Any,
    settings: BatchSettings,
    bucket: str,
    key: str,
    report_key: str,
    output_key: str,
    metadata: dict[str, str],
    error: str,
) -> None:
    """The error report in place of the predictions, and no predictions from an earlier upload left."""
    report = {
        "input": f"s3://{bucket}/{key}",
        "input_etag": metadata["source-etag"],
        "error": error,
        "model_version": metadata["model-version"],
        "output": f"s3://{settings.output_bucket}/{output_key} (not written)",
    }
    client.put_object(
        Bucket=settings.output_bucket,
        Key=report_key,
        Body=json.dumps(report, indent=2, sort_keys=True).encode() + b"\n",
        ContentType="application/json",
        Metadata=metadata,
    )
    client.delete_object(Bucket=settings.output_bucket, Key=output_key)


def _get_current(client: Any, bucket: str, key: str, etag: str | None) -> dict[str, Any]:
    """GetObject of the upload the event names: Superseded if the object was replaced or deleted since."""
    extra = {"IfMatch": etag if etag.startswith('"') else f'"{etag}"'} if etag else {}
    return _unless_gone(lambda: client.get_object(Bucket=bucket, Key=key, **extra), bucket, key)


def _head_current(client: Any, bucket: str, key: str, etag: str) -> None:
    head = _unless_gone(lambda: client.head_object(Bucket=bucket, Key=key), bucket, key)
    if head["ETag"] != etag:
        raise Superseded(f"s3://{bucket}/{key} was replaced while it was scored; the newer upload is scored instead")


def _unless_gone[T](call: Callable[[], T], bucket: str, key: str) -> T:
    from botocore.exceptions import ClientError

    try:
        return call()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("PreconditionFailed", "412"):
            raise Superseded(f"s3://{bucket}/{key} was replaced after this event; its newer event scores it") from None
        if code in ("NoSuchKey", "404", "NotFound"):
            raise Superseded(f"s3://{bucket}/{key} was deleted after this event") from None
        raise
