"""The `/predict_price` request: parse, validate, predict, and the reply for every outcome.

Kept apart from app.py so the route is three lines and this logic is testable on its own.
Errors are values (`Reply` with a 4xx/503) until the edge; nothing here raises for bad input.
Plain Python only: this is the API function's whole request path, and it must not import numpy.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from chalicelib.artifacts import ArtifactError
from chalicelib.columns import ListOps
from chalicelib.contract import FEATURE_NAMES, is_pre_encoded
from chalicelib.logs import log_event
from chalicelib.pipeline import Problem, check
from chalicelib.predictor import LIGHTGBM_VERSION, LazyPredictor, Predictor
from chalicelib.records import BodyError, parse_body, to_columns

MAX_BODY_BYTES = 1_000_000
MAX_RECORDS = 1_000
# Problems and warnings listed per reply; the rest are counted. 1,000 of them (one per record
# allowed) keep the worst reply near half a megabyte, far from Lambda's 6 MB.
MAX_LISTED = 1_000
LIST_OPS = ListOps()
_ENVELOPE_KEYS = frozenset(("records", "explain", "interval"))


@dataclass(frozen=True)
class Reply:
    """Status and body, with the facts the request log needs."""

    status: int
    body: dict[str, Any]
    records: int | None = None
    model_version: str | None = None
    problem_fields: list[str] | None = None


@dataclass(frozen=True)
class Options:
    """What the `{"records": [...], ...}` envelope may ask for besides predictions."""

    explain: bool = False
    interval: float | None = None  # None: the model's default level


@dataclass
class _Request:
    records: list[Any]
    options: Options = field(default_factory=Options)


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
    request = _request_of(payload)
    if isinstance(request, Reply):
        return request
    records = request.records
    if not records:
        return _error(400, "no records: send at least one")
    if len(records) > MAX_RECORDS:
        return _error(400, f"{len(records):,} records; the limit per request is {MAX_RECORDS:,}", len(records))
    try:
        predictor = model.get()
    except ArtifactError as exc:
        return _error(503, f"model unavailable: {exc}", len(records))
    level = _level(request.options, predictor)
    if isinstance(level, Reply):
        return level
    split = to_columns(records)
    problems, warnings = split.problems, split.warnings
    features: list[list[float]] = [[] for _ in records]
    for indices, columns in split.groups:
        checked = check(columns, predictor.encoders, predictor.domain, LIST_OPS)
        if len(indices) == len(records):  # one kind of record only: a group's rows are the request's
            problems.extend(checked.problems)
            warnings.extend(checked.warnings)
        else:
            problems.extend(p.moved(indices[p.record]) for p in checked.problems)
            warnings.extend(w.moved(indices[w.record]) for w in checked.warnings)
        for row, values in zip(checked.rows, checked.matrix, strict=True):
            features[indices[row]] = values
    problems.sort()
    warnings.sort()
    if problems:
        body = {"error": "invalid records"} | _listed("problems", problems) | _listed("warnings", warnings)
        return Reply(400, body, len(records), predictor.version, [p.field for p in problems[:MAX_LISTED]])
    predictions = predictor.predict_rows(features)
    body: dict[str, Any] = {"predictions": predictions, "count": len(predictions), "model_version": predictor.version}
    if split.actuals is not None:
        body["actuals"] = split.actuals
    if predictor.intervals is not None:
        bounds = [predictor.intervals.interval(p, level) for p in predictions]
        body |= {"level": level, "lower": [b[0] for b in bounds], "upper": [b[1] for b in bounds]}
    if request.options.explain:
        body["explanations"] = _explanations(records, features, predictor)
    return Reply(200, body | _listed("warnings", warnings), len(records), predictor.version)


def _level(options: Options, predictor: Predictor) -> float | Reply | None:
    """The interval level to answer with, or a 400 naming `interval`."""
    if predictor.intervals is None:
        if options.interval is not None:
            return _error(400, f'"interval": model version {predictor.version} has no calibrated intervals')
        return None
    level = predictor.intervals.default_level if options.interval is None else options.interval
    if level not in predictor.intervals.levels:
        known = ", ".join(f"{k:g}" for k in sorted(predictor.intervals.levels))
        return _error(400, f'"interval" must be one of the calibrated levels {known}, got {level:g}')
    return level


def _explanations(records: list[Any], features: list[list[float]], predictor: Predictor) -> list[dict[str, Any]]:
    """Each prediction's baseline and per-feature contributions in dollars, largest first; for a raw
    record also grouped back to the fields the user sent (zipcode -> zipcode_freq, date -> year/quarter/month)."""
    explained = []
    for record, contributions in zip(records, predictor.contributions_rows(features), strict=True):
        *values, baseline = contributions
        by_feature = sorted(zip(FEATURE_NAMES, values, strict=True), key=lambda item: -abs(item[1]))
        explanation: dict[str, Any] = {
            "baseline": baseline,
            "contributions": [{"feature": name, "value": value} for name, value in by_feature],
        }
        if not is_pre_encoded(record):
            fields: dict[str, float] = {}
            for name, value in by_feature:
                source = _field_of(name, record)
                fields[source] = fields.get(source, 0.0) + value
            explanation["fields"] = [
                {"field": name, "value": value}
                for name, value in sorted(fields.items(), key=lambda item: -abs(item[1]))
            ]
        explained.append(explanation)
    return explained


def _field_of(feature: str, record: dict[str, Any]) -> str:
    """The field of a raw record a model feature was derived from."""
    if feature == "zipcode_freq":
        return "zipcode"
    if feature == "city_encoded" or (feature in ("lat", "lng") and record.get(feature) is None):
        return "city_full"  # lat/lng not given (or null) were looked up from the city
    if feature in ("year", "quarter", "month") and "date" in record:
        return "date"
    if feature == "quarter" and "quarter" not in record:
        return "month"  # derived from the month
    return feature


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
        "lightgbm_version": LIGHTGBM_VERSION,
    }


def _request_of(payload: Any) -> _Request | Reply:
    if isinstance(payload, list):
        return _Request(payload)
    if not isinstance(payload, dict):
        return _error(400, 'body must be {"records": [...]}, one record object, or a list of records')
    if "records" not in payload:
        return _Request([payload])
    if not isinstance(payload["records"], list):
        return _error(400, '"records" must be an array of record objects')
    unknown = sorted(k for k in payload if k not in _ENVELOPE_KEYS)
    if unknown:
        return _error(
            400,
            f'unknown key(s) {", ".join(map(repr, unknown))[:200]} beside "records"; '
            'the envelope takes "records", "explain" (true/false) and "interval" (a level)',
        )
    explain = payload.get("explain", False)
    if not isinstance(explain, bool):
        return _error(400, '"explain" must be true or false')
    interval = payload.get("interval")
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int | float)):
        return _error(400, '"interval" must be a level such as 0.8 or 0.95')
    try:
        level = None if interval is None else float(interval)
    except OverflowError:
        return _error(400, '"interval" must be a level such as 0.8 or 0.95')
    return _Request(payload["records"], Options(explain, level))


def _error(status: int, message: str, records: int | None = None) -> Reply:
    return Reply(status, {"error": message}, records)
