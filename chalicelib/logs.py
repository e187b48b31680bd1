"""Structured logs: one JSON object per line, so CloudWatch Logs Insights can query fields.

Lines about requests, files and model loads also carry CloudWatch metrics (chalicelib.metrics).

Only facts about the work are logged (ids, counts, timings, outcomes, reasons), never
request bodies or CSV contents: those may hold personal data.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from chalicelib.metrics import with_metrics

logger = logging.getLogger("house_prices")
if not logger.handlers:
    _handler = logging.StreamHandler(sys.stdout)
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log `event` with its fields as one JSON line (and a line per field a rejected request named)."""
    if logger.isEnabledFor(level):
        record = {"event": event, "level": logging.getLevelName(level), **fields}
        for line in with_metrics(record):
            logger.log(level, json.dumps(line, default=str, separators=(",", ":")))
