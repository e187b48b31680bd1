"""The five records users of the common Lambda housing lab send, from the repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LAB_REQUEST = Path(__file__).resolve().parent.parent / "examples" / "lab_request.json"


def lab_records(path: Path = LAB_REQUEST) -> list[dict[str, Any]]:
    """The records of a `{"records": [...]}` request body, as parsed JSON objects."""
    body = json.loads(path.read_text())
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{path}: expected a request body {{'records': [objects]}}")
    return records
