"""Structured logs: one JSON object per line, so CloudWatch Logs Insights can query fields.

Only facts about the work are logged (ids, counts, timings, outcomes, reasons), never
request bodies or CSV contents: those may hold personal data.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

logger = logging.getLogger("house_prices")
if not logger.handlers:
    _handler = logging.StreamHandler(sys.stdout)
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log `event` with its fields as one JSON line."""
    if logger.isEnabledFor(level):
        record = {"event": event, "level": logging.getLevelName(level), **fields}
        logger.log(level, json.dumps(record, default=str, separators=(",", ":")))
