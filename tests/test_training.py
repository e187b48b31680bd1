"""Training: cleaning, splits, determinism, and the model beating its baselines."""

import json

from chalicelib.artifacts import LATEST, MANIFEST_FILE, MODEL_FILE, sha256
from chalicelib.contract import FEATURE_NAMES
from training.data import generate_synthetic
from training.train import train, write_version


def test_synthetic_generator_is_deterministic(tmp_path):
    first = generate_synthetic(tmp_path / "a", zipcodes=20)
    second = generate_synthetic(tmp_path / "b", zipcodes=20)
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert generate_synthetic(tmp_path / "c", zipcodes=20, seed=8)[0].read_bytes() != first[0].read_bytes()


def test_cleaning_drops_and_counts_duplicates_and_implausible_prices(splits):
    dropped = splits.dropped
    assert dropped["exact duplicate rows"] > 0
    assert any(count > 0 for rule, count in dropped.items() if rule.startswith("price"))
    for frame in (splits.train, splits.eval, splits.holdout):
        assert frame["price"].between(10_000, 20_000_000).all()
        assert not frame.duplicated().any()


def test_splits_are_by_date(splits):
    assert splits.train["date"].max() < "2020-01-01"
    assert splits.eval["date"].min() >= "2020-01-01" and splits.eval["date"].max() < "2022-01-01"
    assert splits.holdout["date"].min() >= "2022-01-01"
    # zipcode_freq of a zipcode present in every training month equals the lab's 94
    assert splits.train.groupby("zipcode").size().max() == 94


def test_same_seed_gives_the_same_model_checksum(splits, tmp_path):
    first = write_version(train(splits, 60, log_every=0), splits, tmp_path / "one")
    second = write_version(train(splits, 60, log_every=0), splits, tmp_path / "two")
    assert sha256((first / MODEL_FILE).read_bytes()) == sha256((second / MODEL_FILE).read_bytes())


def test_lightgbm_beats_both_baselines_on_holdout(artifacts_dir):
    version = (artifacts_dir / LATEST).read_text().strip()
    manifest = json.loads((artifacts_dir / version / MANIFEST_FILE).read_text())
    holdout = manifest["metrics"]["holdout"]
    assert holdout["lightgbm"]["R2"] > holdout["linear"]["R2"] + 0.01
    assert holdout["lightgbm"]["MAE"] < holdout["linear"]["MAE"]
    assert holdout["linear"]["R2"] > holdout["median"]["R2"]
    assert manifest["features"] == list(FEATURE_NAMES)
    assert set(manifest["files"]) == {"model.txt", "encoders.json", "report.html", "model_card.md"}
    assert len(manifest["training_data"]["fingerprint"]) == 64
