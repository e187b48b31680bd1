"""The shared dev helpers keep the promises fixtures and benchmarks rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from botocore.exceptions import EndpointConnectionError

from testkit.events import LambdaContext, api_event, s3_put_event
from testkit.lab import LAB_REQUEST, lab_records
from testkit.moto import MotoServer
from testkit.ports import free_port, wait_for_http


def test_moto_server_restarts_empty_on_the_same_port() -> None:
    """An S3 outage in a test: the endpoint goes away, then comes back empty at the same URL."""
    with MotoServer() as server:
        url = server.url
        server.client().create_bucket(Bucket="before")
        server.stop()
        with pytest.raises(EndpointConnectionError):
            server.client().list_buckets()
        server.start()
        assert server.url == url
        assert server.client().list_buckets()["Buckets"] == []
    assert not server.running


def test_child_env_reaches_the_server_and_no_real_account() -> None:
    server = MotoServer(port=free_port())
    env = server.child_env({"PATH": "/bin", "AWS_PROFILE": "real", "AWS_SESSION_TOKEN": "real"})
    assert env["AWS_ENDPOINT_URL_S3"] == server.url
    assert "AWS_PROFILE" not in env and "AWS_SESSION_TOKEN" not in env
    assert env["PATH"] == "/bin" and env["AWS_ACCESS_KEY_ID"] == "testing"


def test_wait_for_http_gives_up_when_the_server_died() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait()
    with pytest.raises(RuntimeError, match="exited with 3"):
        wait_for_http(f"http://127.0.0.1:{free_port()}", timeout=30, process=dead)
    with pytest.raises(RuntimeError, match="did not answer"):
        wait_for_http(f"http://127.0.0.1:{free_port()}", timeout=0.3)


def test_s3_event_keys_are_encoded_as_s3_sends_them() -> None:
    event = s3_put_event("in", "incoming/a b+c%.csv", "incoming/x.csv", size=7)
    keys = [r["s3"]["object"]["key"] for r in event["Records"]]
    assert keys == ["incoming/a+b%2Bc%25.csv", "incoming/x.csv"]
    assert [unquote_plus(k) for k in keys] == ["incoming/a b+c%.csv", "incoming/x.csv"]
    assert {r["s3"]["bucket"]["name"] for r in event["Records"]} == {"in"}
    assert {r["s3"]["object"]["size"] for r in event["Records"]} == {7}


def test_api_event_and_context() -> None:
    event = api_event(None, method="GET", path="/health")
    assert (event["httpMethod"], event["path"]) == ("GET", "/health")
    assert event["requestContext"]["path"] == "/api/health"
    context = LambdaContext(remaining_time_in_millis=5)
    assert context.get_remaining_time_in_millis() == 5
    assert json.loads(json.dumps(context.to_dict()))["function_name"] == context.function_name


def test_lab_records_come_from_the_repository(tmp_path: Path) -> None:
    assert LAB_REQUEST.is_relative_to(Path(__file__).resolve().parent.parent)
    records = lab_records()
    assert len(records) == 5 and all("median_dom" in r for r in records)
    bad = tmp_path / "bad.json"
    bad.write_text('[{"a": 1}]')
    with pytest.raises(ValueError, match="request body"):
        lab_records(bad)
