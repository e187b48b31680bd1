"""The `/predict_price` request: parse, validate, predict, and the reply for every outcome.

Kept apart from app.py so the route is three lines and this logic is testable on its own.
Errors are values (`Reply` with a 4xx/503) until the edge; nothing here raises for bad input.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import lightgbm

from chalicelib.artifacts import ArtifactError
from chalicelib.columns import ListOps
from chalicelib.logs import log_event
from chalicelib.pipeline import Problem, check
from chalicelib.predictor import LazyPredictor
from chalicelib.records import BodyError, parse_body, to_columns

MAX_BODY_BYTES = 1_000_000
MAX_RECORDS = 1_000
# Problems and warnings listed per reply; the rest are counted. 1,000 of them (one per record
# allowed) keep the worst reply near half a megabyte, far from Lambda's 6 MB.
MAX_LISTED = 1_000
LIST_OPS = ListOps()


@dataclass(frozen=True)
class Reply:
    """Status and body, with the facts the request log needs."""

    status: int
    body: dict[str, Any]
    records: int | None = None
    model_version: str | None = None
    problem_fields: list[str] | None = None


def predict_reply(raw_body: bytes | None, model: LazyPredictor, request_id: str | None = None) -> Reply:
    """The whole request, logged as one line: outcome, counts and latency, never the body."""
    start = time.perf_counter()
    reply = _predict(raw_body, model)
    fields = {
        "request_id": request_id,
        "status": reply.status,
        "records": reply.records,
        "model_version": reply.model_version,
        "latency_ms": round((time.perf_counter() - start) * 1000, 3),
    }
    if reply.status == 200:
        log_event("predict", **fields)
    else:
        reason = reply.body["error"]
        if reply.problem_fields:
            fields["problem_fields"] = reply.problem_fields
            reason = f"invalid records: {len(reply.problem_fields)} problem(s)"
        log_event("predict", logging.ERROR if reply.status >= 500 else logging.WARNING, reason=reason, **fields)
    return reply


def _predict(raw_body: bytes | None, model: LazyPredictor) -> Reply:
    """Every failure becomes a 4xx naming the problem, or a 503."""
    if raw_body is not None and len(raw_body) > MAX_BODY_BYTES:
        return _error(413, f"body is {len(raw_body):,} bytes; the limit is {MAX_BODY_BYTES:,}")
    if not raw_body:
        return _error(400, 'empty body: send {"records": [...]}, one record object, or a list of records')
    try:
        payload = parse_body(raw_body)
    except BodyError as exc:
        return _error(400, str(exc))
    records = _records_of(payload)
    if isinstance(records, Reply):
        return records
    if not records:
        return _error(400, "no records: send at least one")
    if len(records) > MAX_RECORDS:
        return _error(400, f"{len(records):,} records; the limit per request is {MAX_RECORDS:,}", len(records))
    try:
        predictor = model.get()
    except ArtifactError as exc:
        return _error(503, f"model unavailable: {exc}", len(records))
    split = to_columns(records)
    problems, warnings = split.problems, split.warnings
    features: list[list[float]] = [[] for _ in records]
    for indices, columns in split.groups:
        checked = check(columns, predictor.encoders, predictor.domain, LIST_OPS)
        problems.extend(Problem(indices[p.record], p.field, p.message) for p in checked.problems)
        warnings.extend(Problem(indices[w.record], w.field, w.message) for w in checked.warnings)
        for row, values in zip(checked.rows, checked.matrix, strict=True):
            features[indices[row]] = values
    problems.sort(key=Problem.sort_key)
    warnings.sort(key=Problem.sort_key)
    if problems:
        body = {"error": "invalid records"} | _listed("problems", problems) | _listed("warnings", warnings)
        return Reply(400, body, len(records), predictor.version, [p.field for p in problems[:MAX_LISTED]])
    predictions = predictor.predict_rows(features)
    body = {"predictions": predictions, "count": len(predictions), "model_version": predictor.version}
    if split.actuals is not None:
        body["actuals"] = split.actuals
    return Reply(200, body | _listed("warnings", warnings), len(records), predictor.version)


def _listed(key: str, problems: list[Problem]) -> dict[str, Any]:
    """Problems for a reply, at most MAX_LISTED of them and the count of the rest: a reply stays small."""
    if not problems:
        return {}
    listed: dict[str, Any] = {key: [p.to_dict() for p in problems[:MAX_LISTED]]}
    if len(problems) > MAX_LISTED:
        listed[f"{key}_not_listed"] = len(problems) - MAX_LISTED
    return listed


def health(model: LazyPredictor) -> dict[str, Any]:
    """What a load balancer or an operator needs, and nothing secret (no paths, no buckets)."""
    predictor = model.loaded
    return {
        "status": "ok",
        "model_loaded": predictor is not None,
        "model_version": predictor.version if predictor else None,
        "lightgbm_version": lightgbm.__version__,
    }


def _records_of(payload: Any) -> list[Any] | Reply:
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        if "records" not in payload:
            return [payload]
        if isinstance(payload["records"], list):
            return payload["records"]
        return _error(400, '"records" must be an array of record objects')
    return _error(400, 'body must be {"records": [...]}, one record object, or a list of records')


def _error(status: int, message: str, records: int | None = None) -> Reply:
    return Reply(status, {"error": message}, records)
