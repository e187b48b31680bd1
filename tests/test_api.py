"""/predict_price and /health through Chalice's test client, with the repo's own config."""

from __future__ import annotations

import json
import shutil

import pytest
from chalice.test import Client

import app as app_module
from chalicelib import api
from chalicelib.api import MAX_BODY_BYTES, MAX_RECORDS
from chalicelib.predictor import load_predictor
from tests.conftest import local_project
from tests.expected import json_features, reference_predict

JSON = {"Content-Type": "application/json"}


def post(client, body, headers=JSON):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    response = client.http.post("/predict_price", headers=headers, body=data)
    return response.status_code, json.loads(response.body)


def raw_record(splits, row: int = 0) -> dict:
    frame = splits.holdout
    keep = [c for c in frame.columns if c not in ("lat", "lng", "city", "median_sale_price", "year", "month")]
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in frame.iloc[row][keep].items()}


def test_lab_records_get_five_predictions_and_their_actuals(client, lab_records, artifacts_dir):
    status, body = post(client, {"records": lab_records})
    assert status == 200
    assert body["count"] == 5 and len(body["predictions"]) == 5
    assert body["actuals"] == [r["price"] for r in lab_records]
    predictor = load_predictor(str(artifacts_dir))
    expected = reference_predict(artifacts_dir, json_features(lab_records, predictor))
    assert body["predictions"] == expected.tolist()  # the lightgbm package's own answer, to the bit
    assert body["model_version"] == predictor.version
    # The test model is trained before 2020; the lab records are from 2020-2021: said, not silent.
    period = [w for w in body["warnings"] if w["field"] == "year"]
    assert [w["record"] for w in period] == [0, 1, 2, 3, 4]
    assert all("outside the training period" in w["message"] for w in period)


def test_single_object_and_bare_list_are_accepted(client, lab_records):
    record = {k: v for k, v in lab_records[0].items() if k != "price"}
    status, single = post(client, record)
    assert status == 200 and single["count"] == 1 and "actuals" not in single
    status, listed = post(client, [record, record])
    assert status == 200 and listed["predictions"] == single["predictions"] * 2


def test_raw_records_are_encoded_like_training(client, splits, artifacts_dir):
    records = [raw_record(splits, i) for i in range(3)]
    status, body = post(client, {"records": records})
    assert status == 200, body
    predictor = load_predictor(str(artifacts_dir))
    from training.train import features_of

    expected = reference_predict(artifacts_dir, features_of(splits.holdout.iloc[:3], predictor.encoders))
    assert body["predictions"] == expected.tolist()
    # lat/lng were omitted and looked up from city_full: said, not silent
    assert {w["field"] for w in body["warnings"]} == {"lat", "lng", "date"}
    assert {w["message"] for w in body["warnings"] if w["field"] == "lat"} == {
        f"not given; taken from city_full {r['city_full']!r}" for r in records
    }


def test_raw_record_with_year_and_month_instead_of_date(client, splits):
    record = raw_record(splits)
    dated = dict(record)
    year, month = (int(x) for x in record.pop("date").split("-")[:2])
    record.update(year=year, month=month)
    assert post(client, record)[1]["predictions"] == post(client, dated)[1]["predictions"]


def problems(body) -> set[tuple[int | None, str]]:
    return {(p["record"], p["field"]) for p in body["problems"]}


def test_missing_fields_are_listed_not_filled(client, lab_records):
    broken = dict(lab_records[1])
    del broken["median_dom"], broken["lat"]
    status, body = post(client, {"records": [lab_records[0], broken]})
    assert status == 400
    assert problems(body) == {(1, "median_dom"), (1, "lat")}
    assert all(p["message"] == "missing" for p in body["problems"])


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("median_dom", "48", "must be a number, got the string '48'"),
        ("median_dom", None, "missing"),
        ("bank", True, "must be a number, got a boolean"),
        ("park", {"n": 1}, "must be a number, got an object"),
        ("median_ppsf", "NaN", "must be a number, got the string 'NaN'"),
        ("sold_above_list", 1.5, "must be a number in [0, 1], got 1.5"),
        ("month", 7.5, "must be an integer in [1, 12], got 7.5"),
        ("lat", -91, "must be a number in [-90, 90], got -91"),
        ("median_list_price", 10**400, "too large"),
        ("price", 10**400, "too large"),
    ],
)
def test_each_wrong_value_is_named(client, lab_records, field, value, expected):
    record = dict(lab_records[0], **{field: value})
    status, body = post(client, {"records": [record]})
    assert status == 400
    assert problems(body) == {(0, field)}
    assert expected in body["problems"][0]["message"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_literals_are_named(client, lab_records, literal):
    text = json.dumps({"records": [lab_records[0]]}).replace('"median_dom": 48.0', f'"median_dom": {literal}')
    status, body = post(client, text)
    assert status == 400
    assert body["problems"] == [
        {"record": 0, "field": "median_dom", "message": f"must be a finite number, got {literal}"}
    ]


def test_quarter_must_agree_with_month(client, lab_records):
    status, body = post(client, dict(lab_records[0], quarter=1))
    assert status == 400 and problems(body) == {(0, "quarter")}


def test_raw_record_problems(client, splits):
    record = raw_record(splits)
    record.update(zipcode="12a45", date="July 2021", city_full="Atlantis, ZZ")
    del record["median_dom"]
    status, body = post(client, record)
    assert status == 400
    assert problems(body) == {(0, "zipcode"), (0, "date"), (0, "median_dom"), (0, "lat"), (0, "lng")}
    lat = next(p for p in body["problems"] if p["field"] == "lat")
    assert "not a known city" in lat["message"]


def test_unknown_fields_are_ignored_with_a_warning(client, lab_records):
    status, body = post(client, dict(lab_records[0], colour="blue"))
    assert status == 200
    assert {"record": 0, "field": "colour", "message": "unknown field, ignored"} in body["warnings"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ("", 400, "empty body"),
        ("{not json", 400, "malformed JSON"),
        ('{"records": []}', 400, "no records"),
        ('{"records": {"a": 1}}', 400, '"records" must be an array'),
        ("42", 400, "body must be"),
        (b"\xff\xfe", 400, "not UTF-8"),
        ("[" * 100_000 + "]" * 100_000, 400, "nested too deeply"),
        ('{"records": ' + "[" * 5_000, 400, "nested too deeply"),
    ],
)
def test_malformed_bodies_get_a_clear_400(client, body, status, fragment):
    got_status, got = post(client, body)
    assert got_status == status
    assert fragment in got["error"]


def test_a_record_that_is_not_an_object(client, lab_records):
    status, body = post(client, [lab_records[0], 7])
    assert status == 400 and body["problems"] == [
        {"record": 1, "field": "", "message": "a record must be a JSON object, got a number"}
    ]


def test_too_many_records_and_too_large_a_body(client, lab_records):
    status, body = post(client, [lab_records[0]] * (MAX_RECORDS + 1))
    assert status == 400 and "limit per request" in body["error"]
    status, body = post(client, json.dumps({"records": [], "pad": "x" * MAX_BODY_BYTES}))
    assert status == 413


def test_wrong_content_type_is_415(client, lab_records):
    response = client.http.post("/predict_price", headers={"Content-Type": "text/plain"}, body="{}")
    assert response.status_code == 415


def test_health_before_and_after_loading(client, lab_records):
    before = json.loads(client.http.get("/health").body)
    assert before["model_loaded"] is False and before["model_version"] is None
    post(client, lab_records)
    after = json.loads(client.http.get("/health").body)
    assert after["model_loaded"] is True and after["model_version"]
    assert set(after) == {"status", "model_loaded", "model_version", "lightgbm_version"}


def test_unloadable_model_is_503_and_a_later_request_retries(cold_app, artifacts_dir, tmp_path, lab_records):
    served = tmp_path / "served"
    with Client(
        cold_app, stage_name="local", project_dir=str(local_project(tmp_path, ARTIFACTS_URI=str(served)))
    ) as client:
        status, body = post(client, lab_records)
        assert status == 503 and "model unavailable" in body["error"] and "LATEST does not exist" in body["error"]
        shutil.copytree(artifacts_dir, served)
        status, body = post(client, lab_records)
        assert status == 200 and body["count"] == 5


# ---------------------------------------------------------------------------- one way in (issue 9)


def messages(body, kind="problems") -> dict[tuple[int, str], str]:
    return {(p["record"], p["field"]): p["message"] for p in body.get(kind, [])}


@pytest.mark.parametrize(
    ("zipcode", "ok"),
    [(2134, True), ("02134", True), ("2134", True), ("02134-0001", True), ("٠٢١٣٤", False), ("0213⁴", False)],
)
def test_zipcode_forms(client, splits, zipcode, ok):
    record = raw_record(splits) | {"zipcode": zipcode}
    status, body = post(client, record)
    if ok:
        same = post(client, raw_record(splits) | {"zipcode": str(zipcode)[:5].zfill(5)})[1]["predictions"]
        assert status == 200 and body["predictions"] == same
    else:
        assert status == 400 and problems(body) == {(0, "zipcode")}
        assert "a zipcode is five digits" in body["problems"][0]["message"]


def test_unseen_zipcode_and_city_are_scored_with_a_warning_naming_what_was_used(client, splits, artifacts_dir):
    record = raw_record(splits) | {"zipcode": "99999", "city_full": "Atlantis, ZZ", "lat": 40.0, "lng": -100.0}
    status, body = post(client, record)
    assert status == 200, body
    found = messages(body, "warnings")
    assert found[(0, "zipcode")] == "99999 is not in the training data: scored as unseen (zipcode_freq 0)"
    mean = load_predictor(str(artifacts_dir)).encoders.city.global_mean
    assert found[(0, "city_full")] == (
        f"'Atlantis, ZZ' is not in the training data: scored with city_encoded {mean:,.0f}, the mean training price"
    )


def test_pre_encoded_encodings_of_unseen_identifiers_are_said(client, lab_records, artifacts_dir):
    mean = load_predictor(str(artifacts_dir)).encoders.city.global_mean
    status, body = post(client, lab_records[0] | {"zipcode_freq": 0.0, "city_encoded": mean})
    assert status == 200
    assert {"zipcode_freq", "city_encoded"} <= {f for _, f in messages(body, "warnings")}


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"year": 2020}, "year", "but date"),
        ({"month": 3}, "month", "but date"),
        ({"quarter": 1}, "quarter", "but date"),
    ],
)
def test_a_date_contradicted_by_year_month_or_quarter_is_refused(client, splits, change, field, fragment):
    record = raw_record(splits) | {"date": "2021-07-01"} | change
    status, body = post(client, record)
    assert status == 400 and problems(body) == {(0, field)}
    message = body["problems"][0]["message"]
    assert fragment in message and "2021-07-01" in message  # both fields named


def test_a_raw_quarter_must_agree_with_its_month(client, splits):
    record = raw_record(splits)
    del record["date"]
    status, body = post(client, record | {"year": 2021, "month": 7, "quarter": 2})
    assert status == 400 and messages(body) == {(0, "quarter"): "is 2, but month 7 is in quarter 3"}
    assert post(client, record | {"year": 2021, "month": 7, "quarter": 3})[0] == 200


def test_a_pre_encoded_record_with_a_contradicting_date_is_refused(client, lab_records):
    status, body = post(client, lab_records[0] | {"date": "2021-08-01"})  # the record says July
    assert status == 400 and problems(body) == {(0, "month")}
    assert post(client, lab_records[0] | {"date": "2021-07-01"})[0] == 200


def test_extrapolation_is_scored_with_a_warning_and_impossible_values_refused(client, lab_records, artifacts_dir):
    low, high = load_predictor(str(artifacts_dir)).domain.ranges["median_dom"]
    status, body = post(client, lab_records[0] | {"median_dom": high + 100})
    assert status == 200
    assert messages(body, "warnings")[(0, "median_dom")] == (
        f"{high + 100:g} is outside the training range [{low:g}, {high:g}]: the model extrapolates"
    )
    status, body = post(client, lab_records[0] | {"median_dom": 5000})
    assert status == 400 and messages(body) == {(0, "median_dom"): "must be a number in [0, 3650], got 5000"}


def test_dates_outside_the_training_period_are_said(client, splits):
    record = raw_record(splits) | {"date": "2012-01-01"}
    status, body = post(client, record)
    assert status == 200 and "outside the training period" in messages(body, "warnings")[(0, "date")]
    status, body = post(client, raw_record(splits) | {"date": "1985-01-01"})
    assert status == 400 and problems(body) == {(0, "date")}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"records": [{"year": ' + "9" * 5000 + "}]}", "a number cannot be read"),
        ('{"year": 2021, "year": 2022}', "key 'year' appears more than once"),
        ('{"records": [{"a": 1}], "records": []}', "key 'records' appears more than once"),
    ],
)
def test_json_python_cannot_hold_is_a_400(client, text, fragment):
    status, body = post(client, text)
    assert status == 400 and fragment in body["error"]


def test_replies_are_bounded(client, lab_records):
    broken = {name: "x" for name in lab_records[0]}
    status, body = post(client, [broken] * api.MAX_RECORDS)
    assert status == 400
    assert len(body["problems"]) == api.MAX_LISTED
    assert body["problems_not_listed"] == len(broken) * api.MAX_RECORDS - api.MAX_LISTED
    assert len(json.dumps(body)) < 1_000_000


def lambda_call(event):
    class Context:
        aws_request_id = "test"
        function_name = "api_handler"

    return app_module.app(event, Context())


@pytest.mark.parametrize(
    "event", [{"body": '{"records": []}'}, {"year": 2021, "month": 7}, [1, 2], "predict", {"requestContext": 3}]
)
def test_an_event_without_api_gateways_envelope_gets_a_json_400_saying_what_to_send(event):
    reply = lambda_call(event)
    assert reply["statusCode"] == 400
    message = json.loads(reply["body"])["error"]
    assert "POST /predict_price" in message and "API Gateway" in message


def test_an_unknown_path_gets_a_json_404_listing_the_routes():
    event = {"requestContext": {"resourcePath": "/nope", "httpMethod": "GET"}, "path": "/nope", "httpMethod": "GET"}
    reply = lambda_call(event)
    assert reply["statusCode"] == 404
    assert "POST /predict_price" in json.loads(reply["body"])["error"]


def test_predict_is_the_lab_path_for_the_same_request(client, lab_records):
    response = client.http.post("/predict", headers=JSON, body=json.dumps({"records": lab_records}))
    assert response.status_code == 200
    assert json.loads(response.body)["predictions"] == post(client, {"records": lab_records})[1]["predictions"]


# ---------------------------------------------------------------------------- why and how sure (issue 11)


def test_every_prediction_has_an_interval_that_contains_it_and_widens_with_the_level(client, lab_records):
    status, default = post(client, {"records": lab_records})
    assert status == 200 and default["level"] == 0.8
    status, wide = post(client, {"records": lab_records, "interval": 0.95})
    assert status == 200 and wide["level"] == 0.95
    assert wide["predictions"] == default["predictions"]
    for p, lo, hi, wlo, whi in zip(
        default["predictions"], default["lower"], default["upper"], wide["lower"], wide["upper"], strict=True
    ):
        assert lo <= p <= hi and wlo <= lo and hi <= whi and (whi - wlo) > (hi - lo)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"interval": 0.5}, '"interval" must be one of the calibrated levels 0.8, 0.95, got 0.5'),
        ({"interval": "wide"}, '"interval" must be a level'),
        ({"explain": "yes"}, '"explain" must be true or false'),
        ({"explian": True}, "unknown key(s) 'explian'"),
        ({"interval": 10**400}, '"interval" must be a level'),
    ],
)
def test_bad_options_are_a_400_naming_them(client, lab_records, body, fragment):
    status, reply = post(client, {"records": lab_records} | body)
    assert status == 400 and fragment in reply["error"]


def test_explained_pre_encoded_records_sum_to_their_predictions(client, lab_records):
    status, body = post(client, {"records": lab_records, "explain": True})
    assert status == 200
    for prediction, explanation in zip(body["predictions"], body["explanations"], strict=True):
        values = [c["value"] for c in explanation["contributions"]]
        assert [c["feature"] for c in explanation["contributions"]] != [] and len(values) == 39
        assert abs(explanation["baseline"] + sum(values) - prediction) <= 1e-6 * abs(prediction)
        assert [abs(v) for v in values] == sorted((abs(v) for v in values), reverse=True)
        assert "fields" not in explanation  # a pre-encoded record's fields are the features
    plain = post(client, {"records": lab_records})[1]
    assert plain["predictions"] == body["predictions"] and "explanations" not in plain


def test_explained_raw_records_are_grouped_back_to_the_fields_sent(client, splits):
    records = [raw_record(splits, i) for i in range(3)]
    status, body = post(client, {"records": records, "explain": True})
    assert status == 200
    for prediction, explanation in zip(body["predictions"], body["explanations"], strict=True):
        fields = {f["field"]: f["value"] for f in explanation["fields"]}
        assert "zipcode_freq" not in fields and "year" not in fields and "lat" not in fields
        assert {"zipcode", "city_full", "date"} <= set(fields)
        by_feature = {c["feature"]: c["value"] for c in explanation["contributions"]}
        assert fields["date"] == pytest.approx(by_feature["year"] + by_feature["quarter"] + by_feature["month"])
        assert fields["city_full"] == pytest.approx(by_feature["city_encoded"] + by_feature["lat"] + by_feature["lng"])
        assert abs(explanation["baseline"] + sum(fields.values()) - prediction) <= 1e-6 * abs(prediction)


def test_a_price_json_reads_as_infinity_is_a_400_not_an_invalid_reply(client, lab_records):
    text = json.dumps({"records": [lab_records[0]]}).replace(f'"price": {lab_records[0]["price"]!r}', '"price": 1e400')
    status, body = post(client, text)
    assert status == 400 and messages(body)[(0, "price")] == "must be a finite number, got inf"
