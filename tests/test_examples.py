"""The request bodies in examples/ get the answers the README promises, through the app's route.

bad_record.400.json is compared whole: when validation's wording changes on purpose,
`make examples` rewrites it and the change shows in review.
"""

from __future__ import annotations

import json
import math

from chalice.test import Client

from tests.conftest import ROOT

EXAMPLES = ROOT / "examples"


def post_example(client: Client, name: str) -> tuple[int, dict]:
    response = client.http.post(
        "/predict_price", headers={"Content-Type": "application/json"}, body=(EXAMPLES / name).read_bytes()
    )
    return response.status_code, json.loads(response.body)


def test_lab_request_gets_five_predictions_and_their_actuals(client: Client) -> None:
    status, body = post_example(client, "lab_request.json")
    assert status == 200, body
    assert body["count"] == 5 and len(body["actuals"]) == 5
    assert all(math.isfinite(p) and p > 0 for p in body["predictions"])


def test_raw_record_is_priced_with_its_location_looked_up(client: Client) -> None:
    status, body = post_example(client, "raw_record.json")
    assert status == 200, body
    assert body["count"] == 1 and body["predictions"][0] > 0
    # The record leaves out lat/lng: its city is one the synthetic model knows, so they are looked up.
    found = {w["field"]: w["message"] for w in body["warnings"]}
    assert found["lat"] == found["lng"] == "not given; taken from city_full 'Ashfield, FL'"
    # The small test model has not seen this zipcode, and 2021 is after its training period: both said.
    assert "scored as unseen" in found["zipcode"] and "outside the training period" in found["date"]


def test_bad_record_gets_the_committed_400(client: Client) -> None:
    status, body = post_example(client, "bad_record.json")
    expected = json.loads((EXAMPLES / "bad_record.400.json").read_text())
    assert status == 400
    # Problems are the model's contract; warnings (training ranges) depend on which model answers.
    answer = {key: body[key] for key in ("error", "problems")}
    committed = {key: expected[key] for key in ("error", "problems")}
    assert answer == committed, "validation's answer changed: if on purpose, run `make examples` and commit the diff"
