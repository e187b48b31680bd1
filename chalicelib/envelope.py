"""What reaches the functions without the envelope Chalice expects, answered instead of crashing.

Chalice answers a Lambda event without API Gateway's `requestContext` (the Lambda console's
test event, a bare record pasted as the event) with a 500 "Unknown request", and its S3 event
class fails on S3's `s3:TestEvent`, which has no `Records`. These two classes let such events
get a JSON 4xx that says what to send and where, and let the S3 handler log and ignore a test
event. Paths API Gateway does not know never reach the function on AWS: API Gateway itself
answers them with 403 `Missing Authentication Token` (Chalice 1.34 cannot declare a
catch-all route); a direct invocation naming such a path gets a 404 from here.
"""

from __future__ import annotations

import json
from typing import Any

from chalice import Chalice
from chalice.app import S3Event

_HOW = 'POST /predict_price with Content-Type: application/json and a body {"records": [...]}; GET /openapi.json'


class ApiApp(Chalice):
    """Chalice, but an event that is not an API Gateway request gets a JSON 4xx instead of a 500."""

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        if not isinstance(event, dict) or not isinstance(event.get("requestContext"), dict):
            return _reply(
                400,
                "this is the house-prices API function: it answers HTTP requests that API Gateway sends. "
                f"Call the API's URL instead: {_HOW}",
            )
        path = event["requestContext"].get("resourcePath")
        if path not in self.routes:
            routes = ", ".join(f"{m} {p}" for p, methods in sorted(self.routes.items()) for m in sorted(methods))
            return _reply(404, f"no route {str(path)[:200]!r}; the routes are: {routes}")
        return super().__call__(event, context)


def _reply(status: int, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"error": message}),
    }


class S3Notification(S3Event):
    """Chalice's S3Event, which also takes S3's test event (no `Records`); `to_dict()` is the event as sent."""

    def _extract_attributes(self, event_dict: dict[str, Any]) -> None:
        try:
            super()._extract_attributes(event_dict)
        except (KeyError, IndexError, TypeError):
            self.bucket, self.key = "", ""
