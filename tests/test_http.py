"""Real HTTP against `chalice local`: status codes, CORS on every answer, and the preflight."""

from __future__ import annotations

import json

import requests


def test_predict_over_http_with_cors(server, lab_records):
    response = requests.post(
        server + "/predict_price", json={"records": lab_records}, headers={"Origin": "https://example.org"}, timeout=30
    )
    assert response.status_code == 200
    assert response.json()["count"] == 5
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_errors_carry_cors_headers_too(server, lab_records):
    bad = requests.post(
        server + "/predict_price", data="{oops", headers={"Content-Type": "application/json"}, timeout=10
    )
    assert bad.status_code == 400 and "malformed JSON" in bad.json()["error"]
    assert bad.headers["Access-Control-Allow-Origin"] == "*"
    invalid = requests.post(server + "/predict_price", json=[{"year": 2021}], timeout=10)
    assert invalid.status_code == 400 and invalid.headers["Access-Control-Allow-Origin"] == "*"


def test_preflight(server):
    response = requests.options(
        server + "/predict_price",
        headers={
            "Origin": "https://example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "content-type" in response.headers["Access-Control-Allow-Headers"].lower()


def test_wrong_content_type_and_oversized_body(server):
    wrong = requests.post(server + "/predict_price", data="a=1", headers={"Content-Type": "text/plain"}, timeout=10)
    assert wrong.status_code == 415
    big = requests.post(
        server + "/predict_price",
        data=json.dumps({"pad": "x" * 1_100_000}),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert big.status_code == 413


def test_health_over_http(server):
    response = requests.get(server + "/health", timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "ok"
