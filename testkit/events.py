"""What Lambda hands a handler: S3 notifications, API Gateway REST proxy events, the context.

Standard library only and cheap to import: the benchmark's child process imports this
before the code it measures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote_plus

REGION = "us-east-1"


def s3_put_record(bucket: str, key: str, size: int = 0, etag: str | None = None) -> dict[str, Any]:
    """One record of the notification S3 sends for an uploaded object (with its ETag when given).

    S3 sends the key URL-encoded with `+` for a space and `/` left as it is.
    """
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": "2026-01-01T00:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "testkit",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key, safe="/"), "size": size, "sequencer": "0"}
            | ({"eTag": etag.strip('"')} if etag else {}),
        },
    }


def s3_put_event(bucket: str, *keys: str, size: int = 0) -> dict[str, Any]:
    """An S3 notification with one record per key (S3 may batch several)."""
    return {"Records": [s3_put_record(bucket, key, size) for key in keys]}


def api_event(
    body: str | None,
    content_type: str = "application/json",
    method: str = "POST",
    path: str = "/predict_price",
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """An API Gateway REST proxy event for stage `api`, as Lambda hands it to the function."""
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/api{path}",
            "stage": "api",
            "requestId": "local-request",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of Lambda's context object that handlers read."""

    function_name: str = "house-prices-dev"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:house-prices-dev"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    log_group_name: str = "/aws/lambda/house-prices-dev"
    log_stream_name: str = "local"
    remaining_time_in_millis: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_time_in_millis

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for a process that cannot import this package (the smoke sandbox)."""
        return asdict(self)
