"""The `/predict_price` request: parse, validate, predict, and the reply for every outcome.

Kept apart from app.py so the route is three lines and this logic is testable on its own.
Errors are values (`Reply` with a 4xx/503) until the edge; nothing here raises for bad input.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import lightgbm

from chalicelib.artifacts import ArtifactError
from chalicelib.logs import log_event
from chalicelib.predictor import LazyPredictor
from chalicelib.validation import NonFinite, validate_records

MAX_BODY_BYTES = 1_000_000
MAX_RECORDS = 1_000


@dataclass(frozen=True)
class Reply:
    """Status and body, with the facts the request log needs."""

    status: int
    body: dict[str, Any]
    records: int | None = None
    model_version: str | None = None


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
        problems = reply.body.get("problems", [])
        reason = reply.body["error"] if not problems else f"invalid records: {len(problems)} problem(s)"
        if problems:
            fields["problem_fields"] = [p["field"] for p in problems]
        log_event("predict", logging.ERROR if reply.status >= 500 else logging.WARNING, reason=reason, **fields)
    return reply


def _predict(raw_body: bytes | None, model: LazyPredictor) -> Reply:
    """Every failure becomes a 4xx naming the problem, or a 503."""
    if raw_body is not None and len(raw_body) > MAX_BODY_BYTES:
        return _error(413, f"body is {len(raw_body):,} bytes; the limit is {MAX_BODY_BYTES:,}")
    if not raw_body:
        return _error(400, 'empty body: send {"records": [...]}, one record object, or a list of records')
    try:
        payload = json.loads(raw_body.decode("utf-8"), parse_constant=NonFinite)
    except UnicodeDecodeError:
        return _error(400, "body is not UTF-8 text")
    except json.JSONDecodeError as exc:
        return _error(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except RecursionError:
        # `[[[[...` a few thousand deep fits in the size limit and exhausts the decoder's stack.
        return _error(400, "malformed JSON: nested too deeply")
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
    checked = validate_records(records, predictor.encoders)
    warnings = [w.to_dict() for w in checked.warnings]
    if checked.matrix is None:
        body = {"error": "invalid records", "problems": [e.to_dict() for e in checked.errors]}
        return Reply(400, body | ({"warnings": warnings} if warnings else {}), len(records), predictor.version)
    predictions = predictor.predict(checked.matrix).tolist()
    body = {"predictions": predictions, "count": len(predictions), "model_version": predictor.version}
    if checked.actuals is not None:
        body["actuals"] = checked.actuals
    if warnings:
        body["warnings"] = warnings
    return Reply(200, body, len(records), predictor.version)


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
