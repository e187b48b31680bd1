"""Prediction intervals: conformal fitting, the serving arithmetic, and the check training prints."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from chalicelib.artifacts import LATEST, MANIFEST_FILE
from chalicelib.intervals import METHODS, IntervalError, Intervals
from training import train as train_module
from training.intervals import LEVELS, CalibrationError, calibrate, coverage, fit


@pytest.fixture(scope="module")
def skewed() -> tuple[np.ndarray, np.ndarray]:
    """Prices with multiplicative, right-skewed noise whose spread grows with the price."""
    rng = np.random.default_rng(3)
    predictions = rng.lognormal(np.log(300_000), 0.5, 4_000)
    spread = 0.05 + 0.1 * (predictions > 400_000)
    actuals = predictions * rng.lognormal(0.02, spread)
    return predictions, actuals


def test_bounds_are_the_conformal_order_statistics():
    residuals = np.linspace(-0.5, 0.5, 99)
    predictions = np.full(99, 100.0)
    fitted = fit(predictions, predictions * (1 + residuals), "relative", levels=(0.8,), default_level=0.8)
    # n = 99: lower is the floor(100 * 0.1) = 10th smallest, upper the ceil(100 * 0.9) = 90th.
    assert fitted.levels[0.8].lower == (pytest.approx(residuals[9], abs=1e-12),)
    assert fitted.levels[0.8].upper == (pytest.approx(residuals[89], abs=1e-12),)


@pytest.mark.parametrize("method", METHODS)
def test_intervals_contain_the_prediction_and_widen_with_the_level(skewed, method):
    intervals = fit(*skewed, method)
    assert set(intervals.levels) == set(LEVELS)
    if method == "price_band":
        assert len(intervals.band_edges) == 4
    for prediction in [1_000.0, *np.quantile(skewed[0], np.linspace(0, 1, 41)), 5e7]:
        low80, high80 = intervals.interval(float(prediction))
        low95, high95 = intervals.interval(float(prediction), 0.95)
        assert 0 <= low95 <= low80 <= prediction <= high80 <= high95
        assert high80 > low80


@pytest.mark.parametrize("method", METHODS)
def test_calibration_rows_are_covered_at_least_nominally(skewed, method):
    report = coverage(fit(*skewed, method), *skewed)
    for level in LEVELS:
        assert report[repr(level)]["coverage"] >= level
        assert report[repr(level)]["coverage"] < level + 0.02


def test_bands_follow_a_spread_that_grows_with_the_price(skewed):
    """Where noise depends on the price, per-band bounds are narrower for cheap homes than one pair for all."""
    banded, single = fit(*skewed, "price_band"), fit(*skewed, "relative")
    cheap = float(np.quantile(skewed[0], 0.1))
    assert np.diff(banded.interval(cheap))[0] < np.diff(single.interval(cheap))[0]


def test_too_few_rows_is_a_calibration_error():
    predictions = np.full(10, 100.0)
    with pytest.raises(CalibrationError, match="10 calibration rows cannot bound a 95% interval"):
        fit(predictions, predictions * 1.01, "relative")
    with pytest.raises(CalibrationError, match="positive"):
        fit(np.array([100.0, -1.0]), np.array([100.0, 100.0]), "relative")


def test_unknown_level_is_named(skewed):
    intervals = fit(*skewed, "relative")
    with pytest.raises(IntervalError, match=r"level 0\.9 is not calibrated; use one of 0\.8, 0\.95"):
        intervals.interval(300_000.0, 0.9)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "quantile_forest"}, "unknown interval method"),
        ({"method": "relative"}, "the relative method has no price bands"),
        ({"default_level": 0.9}, "default level 0.9"),
        ({"band_edges": [4.0, 3.0, 2.0, 1.0]}, "ascending"),
        ({"levels": {"0.8": {"lower": [0.1] * 5, "upper": [0.2] * 5}}}, "lower <= 0 <= upper"),
        ({"levels": {"0.8": {"lower": [-0.1] * 4, "upper": [0.2] * 5}}}, "one lower and one upper per band"),
        ({"default_level": 1.5, "levels": {"1.5": {"lower": [-0.1] * 5, "upper": [0.2] * 5}}}, "not between 0 and 1"),
        ({"levels": None}, "malformed"),
    ],
)
def test_bad_manifest_entries_are_rejected(skewed, change, message):
    data = fit(*skewed, "price_band").to_dict() | change
    with pytest.raises(IntervalError, match=message):
        Intervals.from_dict(data)


def test_calibrate_compares_both_methods_and_keeps_one(skewed):
    zipcodes = [f"{i % 200:05d}" for i in range(len(skewed[0]))]
    calibration = calibrate(*skewed, zipcodes)
    assert calibration.method in METHODS
    compared = calibration.coverage["cross_fitted_by_zipcode"]
    assert set(compared) == set(METHODS)
    for method in METHODS:
        for level in LEVELS:
            assert abs(compared[method][repr(level)]["coverage"] - level) < 0.03


def test_manifest_round_trip(artifacts_dir):
    version = (artifacts_dir / LATEST).read_text().strip()
    manifest = json.loads((artifacts_dir / version / MANIFEST_FILE).read_text())
    entry = manifest["intervals"]
    intervals = Intervals.from_dict(entry)
    assert intervals.method == entry["method"] in METHODS
    assert intervals.default_level == 0.8 and set(intervals.levels) == {0.8, 0.95}
    assert Intervals.from_dict(json.loads(json.dumps(intervals.to_dict()))) == intervals
    assert entry["calibration_rows"] > 1_000
    assert set(entry["coverage"]["cross_fitted_by_zipcode"]) == set(METHODS)


def test_training_checks_coverage_on_a_fresh_draw(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # Smaller than the shared fixture's model (a few seconds): the check runs end to end, not the model.
    argv = ["train", "--zipcodes", "60", "--num-boost-round", "40", "--out", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", argv)
    train_module.main()
    printed = capsys.readouterr().out
    assert "fresh draw, 2022 on" in printed
    version = (tmp_path / "out" / LATEST).read_text().strip()
    manifest = json.loads((tmp_path / "out" / version / MANIFEST_FILE).read_text())
    fresh = manifest["intervals"]["coverage"]["fresh_draw"]
    assert set(fresh) == set(METHODS)
    for method in METHODS:
        for level in LEVELS:
            numbers = fresh[method][repr(level)]
            assert numbers["rows"] > 1_000
            # A small model on 60 zipcodes: a loose band; `make train` holds the 2-point goal.
            assert abs(numbers["coverage"] - level) < 0.08, (method, level, numbers)
            assert 0 < numbers["mean_relative_width"] < 1
    assert sum(1 for line in printed.splitlines() if line.startswith("  fresh draw")) == len(METHODS)
