"""CloudWatch metrics from the JSON log lines we already write, in the embedded metric format (EMF).

Why EMF: CloudWatch Logs extracts the metrics from a line that carries `_aws` metadata, after the
fact and outside the function, so a request pays for no API call, no client and no dependency.
The values are the line's own fields (`latency_ms`, `records`, `rows`, `seconds`): the metadata
only names them, so the metrics and the log say the same thing by construction.

Dimensions stay low-cardinality, as CloudWatch bills per distinct combination: the function
(one per Lambda function), the event (a handful), and for rejections a field of the contract
(anything else counts as "other", so no request can invent a dimension value).

What this is not: a metrics client. It adds nothing to lines that name no metric.
Spec: "Specification: Embedded metric format" in the Amazon CloudWatch User Guide.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

from chalicelib.contract import KNOWN_FIELDS

NAMESPACE = "HousePrices"
# Lambda sets this in every function; outside Lambda (chalice local, tests, the CLI) there is none.
FUNCTION_ENV = "AWS_LAMBDA_FUNCTION_NAME"
REJECTED_FIELD = "rejected_field"


@dataclass(frozen=True)
class Metric:
    """A numeric field of a log line, published as the metric of the same name."""

    name: str
    unit: str


METRICS: dict[str, tuple[Metric, ...]] = {
    "predict": (Metric("latency_ms", "Milliseconds"), Metric("records", "Count")),
    "batch_file": (Metric("rows", "Count"), Metric("rows_with_errors", "Count"), Metric("seconds", "Seconds")),
    "model_loaded": (Metric("seconds", "Seconds"),),
    REJECTED_FIELD: (Metric("rejections", "Count"),),
}


def with_metrics(line: dict[str, Any], timestamp_ms: int | None = None) -> list[dict[str, Any]]:
    """The line with its EMF metadata, then one `rejected_field` line per field a 400 named.

    A metric needs one dimension value per document, so the rejections of one request are
    one document per field, not a list inside the request's line.
    """
    if timestamp_ms is None:
        timestamp_ms = int(time.time() * 1000)
    function = os.environ.get(FUNCTION_ENV) or "local"
    lines = [_embed(line, function, timestamp_ms)]
    counts: dict[str, int] = {}
    for name in line.get("problem_fields") or ():
        field = name if name in KNOWN_FIELDS else "other"
        counts[field] = counts.get(field, 0) + 1
    for field, n in counts.items():
        rejected = {
            "event": REJECTED_FIELD,
            "level": line.get("level"),
            "request_id": line.get("request_id"),
            "field": field,
            "rejections": n,
        }
        lines.append(_embed(rejected, function, timestamp_ms, ("field",)))
    return lines


def _embed(
    line: dict[str, Any], function: str, timestamp_ms: int, extra_dimensions: tuple[str, ...] = ()
) -> dict[str, Any]:
    """`line` plus `_aws` naming its numeric metrics; unchanged when it has none."""
    metrics = [m for m in METRICS.get(line.get("event", ""), ()) if _is_number(line.get(m.name))]
    if not metrics:
        return line
    directive = {
        "Namespace": NAMESPACE,
        "Dimensions": [["function", "event", *extra_dimensions]],
        "Metrics": [{"Name": m.name, "Unit": m.unit} for m in metrics],
    }
    return line | {"function": function, "_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": [directive]}}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
