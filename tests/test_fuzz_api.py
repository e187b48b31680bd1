"""Property-based tests of the request path: any body gets a 200 or a 4xx, never a 500,
and a 200 only when every record really carried every value its prediction used."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.api import predict_reply
from chalicelib.contract import FEATURE_NAMES, FEATURES, PASSTHROUGH
from chalicelib.predictor import LazyPredictor, load_predictor

EXAMPLES = 300
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["", "NaN", "1e400", "48", " 12 ", "x" * 5000, "Ω≈ç√", "\x00"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def model(artifacts_dir) -> LazyPredictor:
    predictor = load_predictor(str(artifacts_dir))
    return LazyPredictor(lambda: predictor)


def dumps(value: object) -> bytes:
    """JSON as a client would send it, NaN/Infinity literals included."""
    return json.dumps(value, allow_nan=True).encode()


def check_reply(body: bytes, model: LazyPredictor):
    reply = predict_reply(body, model)
    assert reply.status in (200, 400, 413), reply
    json.dumps(reply.body, allow_nan=False)  # the reply itself is strict JSON
    if reply.status == 200:
        assert reply.body["count"] == len(reply.body["predictions"])
        assert all(math.isfinite(p) for p in reply.body["predictions"])
    else:
        assert reply.body["error"]
        for problem in reply.body.get("problems", []):
            assert problem["message"] and isinstance(problem["field"], str)
    return reply


def complete_pre_encoded(record: dict) -> bool:
    """An independent oracle: every feature present as a real number within bounds."""
    for spec in FEATURES:
        value = record.get(spec.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not (math.isfinite(value) and spec.low <= value <= spec.high):
            return False
    return True


@FUZZ
@given(json_values)
def test_any_json_body(model, value):
    check_reply(dumps(value), model)


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_body(model, raw):
    check_reply(raw, model)


def mutated_records(lab_records):
    """Lab records with fields deleted, replaced by arbitrary JSON, or added under any key."""
    base = st.sampled_from(lab_records)
    edits = st.lists(
        st.tuples(
            st.sampled_from(["delete", "replace", "add"]),
            st.sampled_from([*FEATURE_NAMES, "zipcode", "city_full", "date", "price"]),
            json_values,
            st.text(min_size=1, max_size=20),
        ),
        max_size=4,
    )

    def apply(record: dict, steps: list) -> dict:
        record = dict(record)
        for action, name, value, key in steps:
            if action == "delete":
                record.pop(name, None)
            elif action == "replace":
                record[name] = value
            else:
                record[key] = value
        return record

    return st.builds(apply, base, edits)


@pytest.fixture(scope="module")
def record_strategy(lab_records):
    return mutated_records(lab_records)


def test_mutated_records(model, record_strategy):
    seen = {200: 0, 400: 0}

    @FUZZ
    @given(st.lists(record_strategy, min_size=1, max_size=5))
    def run(records):
        reply = check_reply(dumps({"records": records}), model)
        seen[reply.status] += 1
        if reply.status == 200:
            assert reply.body["count"] == len(records)
            assert all(complete_pre_encoded(r) for r in records), "a prediction from an incomplete record"
        else:
            assert reply.body["problems"]

    run()
    assert seen[200] > 0 and seen[400] > 0, seen


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["zipcode", "city_full", "date", "year", "month", *[f.name for f in PASSTHROUGH]]),
        json_values,
        max_size=40,
    )
)
def test_arbitrary_raw_records(model, record):
    reply = check_reply(dumps([record]), model)
    if reply.status == 200:
        assert isinstance(record.get("city_full"), str) and record.get("zipcode") is not None
        assert all(f.name in record for f in PASSTHROUGH if f.name not in ("lat", "lng"))
