"""Encoders and the feature contract."""

import json

import numpy as np
import pytest

from chalicelib.contract import FEATURE_NAMES, TARGET, normalize_city, normalize_zipcode, parse_date
from chalicelib.encoders import CityLocations, CityTargetEncoder, Encoders, ZipcodeFrequencyEncoder


def test_feature_order_is_the_lab_request_order(lab_records):
    for record in lab_records:
        assert [k for k in record if k != TARGET] == list(FEATURE_NAMES)
    assert len(FEATURE_NAMES) == 39


def test_zipcode_frequency_counts_train_rows_and_unseen_is_zero():
    encoder = ZipcodeFrequencyEncoder().fit([2134, "02134", "90210", 90210, 90210])
    assert encoder.transform(["02134", 2134, "90210", "10001"]) == [2.0, 2.0, 3.0, 0.0]


def test_city_target_encoder_shrinks_toward_global_mean_and_unseen_gets_it():
    encoder = CityTargetEncoder(smoothing=2).fit(["Austin", "austin ", "Boston"], [100.0, 300.0, 500.0])
    assert encoder.global_mean == pytest.approx(300.0)
    # Austin: (100 + 300 + 2 * 300) / (2 + 2); Boston: (500 + 2 * 300) / (1 + 2)
    assert encoder.transform(["AUSTIN", "Boston", "Nowhere"]) == pytest.approx([250.0, 1100 / 3, 300.0])


def test_encoders_json_round_trip_predicts_the_same(splits):
    train = splits.train
    fitted = Encoders.fit(
        train["zipcode"].tolist(),
        train["city_full"].tolist(),
        train[TARGET].to_numpy(),
        train["lat"].to_numpy(),
        train["lng"].to_numpy(),
    )
    restored = Encoders.from_dict(json.loads(json.dumps(fitted.to_dict())))
    probe_zips = [*train["zipcode"].unique()[:5].tolist(), "00001"]
    probe_cities = [*train["city_full"].unique()[:3].tolist(), "Atlantis, ZZ"]
    np.testing.assert_array_equal(restored.zipcode.transform(probe_zips), fitted.zipcode.transform(probe_zips))
    np.testing.assert_array_equal(restored.city.transform(probe_cities), fitted.city.transform(probe_cities))
    assert restored.locations.lookup(probe_cities[0]) == fitted.locations.lookup(probe_cities[0])
    assert restored.locations.lookup("Atlantis, ZZ") is None


def test_city_locations_take_the_first_seen_coordinates():
    locations = CityLocations().fit(["Akron, OH", "akron, oh"], [41.08, 0.0], [-81.52, 0.0])
    assert locations.lookup("AKRON, OH") == (41.08, -81.52)


@pytest.mark.parametrize(("text", "expected"), [("2021-07-01", (2021, 7)), ("2020-02", (2020, 2))])
def test_parse_date(text, expected):
    assert parse_date(text) == expected


@pytest.mark.parametrize("text", ["2021", "07/01/2021", "2021-13-01", ""])
def test_parse_date_rejects(text):
    with pytest.raises(ValueError):
        parse_date(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2134, "02134"), ("2134", "02134"), ("02134", "02134"), (" 45202 ", "45202"), ("45202-1234", "45202")],
)
def test_normalize_zipcode_gives_five_ascii_digits(value, expected):
    assert normalize_zipcode(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "1234567",
        "12a45",
        True,
        12.5,
        2134.0,
        "",
        123456,
        -1,
        "٤٥٢٠٢",  # Arabic-Indic digits
        "4520²",  # a superscript two
        "45202-12",
        "4520-1234",
        "45202 1234",
        None,
        ["45202"],
    ],
)
def test_normalize_zipcode_rejects(value):
    with pytest.raises(ValueError, match="a zipcode is five digits"):
        normalize_zipcode(value)


@pytest.mark.parametrize(
    "spelling",
    [
        "Ashfield, FL",
        "Ashfield,FL",
        "ASHFIELD FL",
        "  ashfield   fl ",
        "\uff21\uff53\uff48\uff46\uff49\uff45\uff4c\uff44, \uff26\uff2c",  # full-width compatibility forms
        "Ash\u200bfield,\u00a0FL",  # a zero-width space, a non-breaking space
        "\ufeffAshfield, FL\u00ad",  # a byte-order mark, a soft hyphen
        "Ashfield, FL\t",
    ],
)
def test_every_spelling_of_a_city_has_one_key(spelling):
    assert normalize_city(spelling) == "ashfield fl"


@pytest.mark.parametrize("other", ["Ashfield, GA", "Ashfeld, FL", "Ash field, FL"])
def test_other_cities_keep_other_keys(other):
    assert normalize_city(other) != "ashfield fl"
