"""The one input pipeline: the same home gets the same answer on every path, and every rule holds on both column types.

Metamorphic properties (hypothesis): a home written as raw JSON, pre-encoded JSON, raw CSV or
pre-encoded CSV, with any spelling of its zipcode and city, gets bit-identical predictions; the
list and numpy column primitives find the same problems, warnings and features.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import api
from chalicelib.batch.scoring import score_csv_stream
from chalicelib.columns import ListOps
from chalicelib.columns_numpy import NumpyOps
from chalicelib.contract import FEATURE_NAMES, PASSTHROUGH, normalize_city, normalize_zipcode, quarter_of
from chalicelib.pipeline import Columns, check
from chalicelib.predictor import LazyPredictor, Predictor, load_predictor
from chalicelib.records import to_columns

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
RAW_NUMBERS = [f.name for f in PASSTHROUGH]


@pytest.fixture(scope="module")
def predictor(artifacts_dir: Path) -> Predictor:
    return load_predictor(str(artifacts_dir))


@pytest.fixture(scope="module")
def homes(splits) -> list[dict]:
    """Raw HouseTS rows of every split: known and (in later splits) extrapolated dates."""
    frames = [splits.train.iloc[::997], splits.eval.iloc[::211], splits.holdout.iloc[::211]]
    rows = []
    for frame in frames:
        for record in frame.to_dict("records"):
            rows.append(
                {
                    "zipcode": str(record["zipcode"]),
                    "city_full": str(record["city_full"]),
                    "date": str(record["date"]),
                    **{name: float(record[name]) for name in RAW_NUMBERS},
                }
            )
    return rows


def reply(body: object, predictor: Predictor) -> api.Reply:
    return api._predict(json.dumps(body, allow_nan=False).encode(), LazyPredictor(lambda: predictor))


def zipcode_spellings(zipcode: str) -> list[object]:
    five = normalize_zipcode(zipcode)
    return [five, int(five), str(int(five)), f"{five}-0001", f" {five} "]


def city_spellings(city: str) -> list[str]:
    name, _, state = city.rpartition(", ")
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in name)
    return [
        city,
        f"{name},{state}",
        f"{name.upper()} {state}",
        f"  {name.lower()},  {state.lower()} ",
        f"{wide}, {state}",
        f"\u200b{name}\u00a0{state}\ufeff",
    ]


def raw_variant(home: dict, data: st.DataObject, lat_lng: bool) -> dict:
    record = dict(home)
    record["zipcode"] = data.draw(st.sampled_from(zipcode_spellings(home["zipcode"])))
    record["city_full"] = data.draw(st.sampled_from(city_spellings(home["city_full"])))
    calendar = data.draw(st.sampled_from(["date", "year_month", "year_month_quarter", "date_and_all"]))
    year, month = int(home["date"][:4]), int(home["date"][5:7])
    if calendar != "date":
        record.update(year=year, month=month)
    if calendar in ("year_month_quarter", "date_and_all"):
        record["quarter"] = quarter_of(month)
    if calendar.startswith("year_month"):
        del record["date"]
    if not lat_lng:
        del record["lat"], record["lng"]
    return record


def pre_encoded(home: dict, predictor: Predictor) -> dict:
    """The home as the lab sends it: encodings computed the way training computes them."""
    enc = predictor.encoders
    year, month = int(home["date"][:4]), int(home["date"][5:7])
    key = normalize_city(home["city_full"])
    features = {
        "year": year,
        "quarter": quarter_of(month),
        "month": month,
        **{name: home[name] for name in RAW_NUMBERS},
        "zipcode_freq": float(enc.zipcode.counts.get(normalize_zipcode(home["zipcode"]), 0)),
        "city_encoded": enc.city.means.get(key, enc.city.global_mean),
    }
    return {name: features[name] for name in FEATURE_NAMES}


def csv_bytes(records: list[dict]) -> bytes:
    columns = list(dict.fromkeys(k for r in records for k in r))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for r in records:
        writer.writerow([repr(r[c]) if isinstance(r.get(c), float) else r.get(c, "") for c in columns])
    return out.getvalue().encode()


def csv_predictions(data: bytes, predictor: Predictor) -> list[float]:
    out = io.BytesIO()
    score_csv_stream(io.BytesIO(data), out.write, predictor)
    rows = list(csv.DictReader(io.StringIO(out.getvalue().decode())))
    assert all(r["error"] == "" for r in rows), [r["error"] for r in rows]
    return [float(r["predicted_price"]) for r in rows]


def same_bits(a: list[float], b: list[float]) -> bool:
    """Equal as floats and in sign (0.0 == -0.0, but they are not the same answer)."""
    if len(a) != len(b):
        return False
    return all(x == y and math.copysign(1, x) == math.copysign(1, y) for x, y in zip(a, b, strict=True))


@PROPERTY
@given(data=st.data())
def test_the_same_homes_get_bit_identical_predictions_on_every_path(homes, predictor, data):
    chosen = data.draw(st.lists(st.sampled_from(homes), min_size=1, max_size=6))
    lat_lng = data.draw(st.booleans())
    raw = [raw_variant(h, data, lat_lng) for h in chosen]
    encoded = [pre_encoded(h, predictor) for h in chosen]

    raw_json = reply({"records": raw}, predictor)
    assert raw_json.status == 200, raw_json.body
    encoded_json = reply({"records": encoded}, predictor)
    assert encoded_json.status == 200, encoded_json.body
    expected = encoded_json.body["predictions"]
    assert same_bits(raw_json.body["predictions"], expected)
    assert same_bits(csv_predictions(csv_bytes(encoded), predictor), expected)
    # A CSV has one layout for all rows: the canonical raw spelling, and lat/lng as drawn.
    raw_rows = [{k: v for k, v in h.items() if lat_lng or k not in ("lat", "lng")} for h in chosen]
    assert same_bits(csv_predictions(csv_bytes(raw_rows), predictor), expected)
    spelled = [dict(r, zipcode=str(r["zipcode"]), city_full=r["city_full"]) for r in raw if "date" in r]
    if spelled and all("year" not in r for r in spelled):
        wanted = [p for p, r in zip(expected, raw, strict=True) if "date" in r]
        assert same_bits(csv_predictions(csv_bytes(spelled), predictor), wanted)


@PROPERTY
@given(data=st.data())
def test_spellings_of_a_zipcode_or_city_get_identical_predictions(homes, predictor, data):
    home = data.draw(st.sampled_from(homes))
    spellings = [dict(home, zipcode=z) for z in zipcode_spellings(home["zipcode"])]
    spellings += [dict(home, city_full=c) for c in city_spellings(home["city_full"])]
    body = reply({"records": spellings}, predictor)
    assert body.status == 200, body.body
    assert len(set(body.body["predictions"])) == 1
    messages = {(w["field"], w["message"]) for w in body.body.get("warnings", []) if w["field"] not in ("city_full",)}
    per_record = [[w for w in body.body.get("warnings", []) if w["record"] == i] for i in range(len(spellings))]
    assert len({len(ws) for ws in per_record}) == 1, messages  # the same doubts for every spelling


def _columns_as_numpy(columns: Columns) -> Columns:
    return Columns(
        columns.rows,
        columns.encoded,
        {k: np.asarray(v, dtype=np.float64) for k, v in columns.numbers.items()},
        columns.absent,
        columns.texts,
        columns.unreadable,
    )


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["2021-07-01", "2021-07", "2021-13-01", "02134", "45202-1234", "Elmford, AZ", "1e999"]),
)


@PROPERTY
@given(data=st.data())
def test_list_and_numpy_columns_find_the_same_things(homes, predictor, data):
    """The two column types are the only thing that exists twice: every rule must agree on both."""
    records = []
    for _ in range(data.draw(st.integers(1, 5))):
        record = dict(data.draw(st.sampled_from(homes)))
        if data.draw(st.booleans()):
            record = pre_encoded(record, predictor) | ({"date": record["date"]} if data.draw(st.booleans()) else {})
        for name in data.draw(st.lists(st.sampled_from([*FEATURE_NAMES, "zipcode", "city_full", "date"]), max_size=4)):
            if data.draw(st.booleans()):
                record.pop(name, None)
            else:
                record[name] = data.draw(json_values)
        records.append(record)
    for _, columns in to_columns(records).groups:
        listed = check(columns, predictor.encoders, predictor.domain, ListOps())
        arrays = check(_columns_as_numpy(columns), predictor.encoders, predictor.domain, NumpyOps())
        assert listed.problems == arrays.problems
        assert listed.warnings == arrays.warnings
        assert listed.rows == arrays.rows
        assert np.array_equal(
            np.array(listed.matrix, dtype=np.float64).reshape(len(listed.rows), len(FEATURE_NAMES)), arrays.matrix
        )
