"""The log lines carry CloudWatch embedded-metric-format (EMF) metadata that obeys the spec.

`emf_problems` checks a document against the structure the EMF specification requires
(Amazon CloudWatch User Guide, "Specification: Embedded metric format"): CloudWatch Logs
drops a document that breaks it without telling anyone, so the test is the only alarm.
Lines come from the real route through Chalice's test client, not from hand-made dicts,
except for the batch line, whose call site needs a whole S3 pipeline.
"""

from __future__ import annotations

import json
import math
from typing import Any

from chalice.test import Client

from chalicelib.logs import log_event
from chalicelib.metrics import NAMESPACE, with_metrics
from tests.conftest import ROOT

_SIZES = ("Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes")
_BITS = ("Bits", "Kilobits", "Megabits", "Gigabits", "Terabits")
UNITS = {
    *("Seconds", "Microseconds", "Milliseconds", "Percent", "Count", "None", "Count/Second"),
    *_SIZES,
    *_BITS,
    *(f"{u}/Second" for u in (*_SIZES, *_BITS)),
}
MAX_EVENT_BYTES = 256 * 1024


def emf_problems(line: dict[str, Any]) -> list[str]:
    """Every way `line` breaks the EMF spec's required structure; empty when it is valid."""
    found: list[str] = []
    if len(json.dumps(line).encode()) > MAX_EVENT_BYTES:
        found.append("larger than a log event may be")
    meta = line.get("_aws")
    if not isinstance(meta, dict):
        return [*found, "_aws is not an object"]
    stamp = meta.get("Timestamp")
    if not isinstance(stamp, int) or isinstance(stamp, bool) or stamp < 10**12:
        found.append(f"Timestamp must be milliseconds since the epoch, got {stamp!r}")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return [*found, "CloudWatchMetrics must be a non-empty array"]
    for d in directives:
        if set(d) != {"Namespace", "Dimensions", "Metrics"}:
            found.append(f"a MetricDirective has the members {sorted(d)}")
            continue
        if not isinstance(d["Namespace"], str) or not 1 <= len(d["Namespace"]) <= 1024:
            found.append("Namespace must be a string of 1-1024 characters")
        dimension_names: set[str] = set()
        for dimension_set in d["Dimensions"]:
            if not isinstance(dimension_set, list) or len(dimension_set) > 30:
                found.append(f"a DimensionSet must be an array of at most 30 keys: {dimension_set!r}")
                continue
            for key in dimension_set:
                dimension_names.add(key)
                value = line.get(key)
                if not isinstance(value, str) or not value.strip() or len(value) > 1024 or not value.isascii():
                    found.append(f"dimension {key!r} needs a non-blank ASCII string of <= 1024 characters: {value!r}")
                if key.startswith(":"):
                    found.append(f"dimension name {key!r} starts with a colon")
        if not isinstance(d["Metrics"], list) or not 1 <= len(d["Metrics"]) <= 100:
            found.append("Metrics must be an array of 1-100 MetricDefinitions")
            continue
        for m in d["Metrics"]:
            name = m.get("Name")
            if not set(m) <= {"Name", "Unit", "StorageResolution"} or not isinstance(name, str) or not name:
                found.append(f"bad MetricDefinition {m!r}")
                continue
            if "Unit" in m and m["Unit"] not in UNITS:
                found.append(f"{name}: unit {m['Unit']!r} is not a CloudWatch unit")
            if name in dimension_names:
                found.append(f"{name} is both a metric and a dimension")
            value = line.get(name)
            values = value if isinstance(value, list) else [value]
            if not 1 <= len(values) <= 100 or not all(_finite_number(v) for v in values):
                found.append(f"metric {name} needs a number or an array of 1-100 numbers, got {value!r}")
    return found


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def metric_names(line: dict[str, Any]) -> dict[str, str]:
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    return {m["Name"]: m["Unit"] for m in directive["Metrics"]}


def post(client: Client, body: bytes) -> int:
    return client.http.post("/predict_price", headers={"Content-Type": "application/json"}, body=body).status_code


def test_a_prediction_logs_latency_records_and_the_model_load(client, logged) -> None:
    assert post(client, (ROOT / "examples" / "lab_request.json").read_bytes()) == 200
    by_event = {line["event"]: line for line in logged}
    loaded, predict = by_event["model_loaded"], by_event["predict"]
    for line in (loaded, predict):
        assert emf_problems(line) == []
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE
        assert directive["Dimensions"] == [["function", "event"]]
        assert line["function"] == "local"  # not in Lambda: no AWS_LAMBDA_FUNCTION_NAME
    assert metric_names(predict) == {"latency_ms": "Milliseconds", "records": "Count"}
    assert predict["records"] == 5 and predict["latency_ms"] > 0
    assert metric_names(loaded) == {"seconds": "Seconds"}


def test_a_rejected_request_counts_each_field_it_named(client, logged) -> None:
    body = json.loads((ROOT / "examples" / "bad_record.json").read_text())
    # Two records: one field wrong in both, one only in the second.
    second = dict(body, sold_above_list=0.5, median_ppsf=-1)
    assert post(client, json.dumps({"records": [body, second]}).encode()) == 400
    predict = next(line for line in logged if line["event"] == "predict")
    assert predict["problem_fields"] == ["median_dom", "sold_above_list", "median_ppsf", "median_dom"]  # contract order
    rejected = [line for line in logged if line["event"] == "rejected_field"]
    assert {line["field"]: line["rejections"] for line in rejected} == {
        "median_dom": 2,
        "sold_above_list": 1,
        "median_ppsf": 1,
    }
    for line in [predict, *rejected]:
        assert emf_problems(line) == []
    for line in rejected:
        assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["function", "event", "field"]]
        assert metric_names(line) == {"rejections": "Count"}
        assert line["request_id"] == predict["request_id"] and line["level"] == "WARNING"


def test_a_request_without_a_record_count_publishes_only_its_latency(client, logged) -> None:
    assert post(client, b"{oops") == 400
    (predict,) = logged
    assert predict["records"] is None
    assert emf_problems(predict) == []
    assert metric_names(predict) == {"latency_ms": "Milliseconds"}


def test_the_function_name_is_the_dimension_in_lambda(monkeypatch, logged) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "house-prices-prod-score_uploaded_csv")
    log_event("batch_file", outcome="scored", rows=1000, rows_with_errors=3, seconds=0.8, input="s3://b/k")
    (line,) = logged
    assert emf_problems(line) == []
    assert line["function"] == "house-prices-prod-score_uploaded_csv"
    assert metric_names(line) == {"rows": "Count", "rows_with_errors": "Count", "seconds": "Seconds"}


def test_lines_without_metrics_are_left_alone() -> None:
    failed = {"event": "batch_file", "level": "ERROR", "outcome": "failed", "reason": "not CSV"}
    assert with_metrics(failed) == [failed]
    other = {"event": "model_load_failed", "level": "ERROR", "reason": "S3 down"}
    assert with_metrics(other) == [other]


def test_a_field_name_from_a_request_never_becomes_a_dimension() -> None:
    line = {"event": "predict", "level": "WARNING", "latency_ms": 1.0, "records": 1, "problem_fields": ["x" * 5000, ""]}
    (_, rejected) = with_metrics(line, timestamp_ms=1_764_000_000_000)
    assert rejected["field"] == "other" and rejected["rejections"] == 2
    assert emf_problems(rejected) == []
