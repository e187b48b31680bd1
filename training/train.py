"""Train the house-price model and write a versioned artifact folder.

    python -m training.train                         # synthetic data (the default)
    python -m training.train --data HouseTS.csv --metros us_metros.csv

Encoders are fitted on the training split only; LightGBM stops early on the eval split;
the holdout split (2022 on) reports the final table and calibrates the prediction intervals
(training/intervals.py says why there).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd

from chalicelib.artifacts import ENCODERS_FILE, LATEST, MANIFEST_FILE, MODEL_FILE, sha256
from chalicelib.columns_numpy import NumpyOps
from chalicelib.contract import FEATURE_NAMES, FEATURES, PASSTHROUGH, TARGET
from chalicelib.encoders import Encoders
from chalicelib.pipeline import Columns, TrainingDomain, check
from training.data import Splits, fingerprint, generate_synthetic, load_housets, split_by_date
from training.evaluate import LinearBaseline, MedianBaseline, format_table, regression_metrics
from training.intervals import calibrate, format_coverage, fresh_draw_coverage

PARAMS: dict[str, Any] = {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_leaves": 64,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "feature_fraction": 0.8,
    "min_child_samples": 20,
    "seed": 42,
    "deterministic": True,
    "force_col_wise": True,
    "verbosity": -1,
}
NUM_BOOST_ROUND = 600
EARLY_STOPPING_ROUNDS = 50


def features_of(frame: pd.DataFrame, encoders: Encoders) -> np.ndarray:
    """The model matrix of cleaned raw rows, through the service's own pipeline: features can
    never be derived differently in training and serving."""
    n = len(frame)
    given = ("year", "month", *(f.name for f in PASSTHROUGH))
    numbers = {
        name: frame[name].to_numpy(np.float64) if name in given else np.full(n, np.nan) for name in FEATURE_NAMES
    }
    absent = {name: [] if name in given else list(range(n)) for name in FEATURE_NAMES}
    texts = {"zipcode": frame["zipcode"].tolist(), "city_full": frame["city_full"].astype(str).tolist()}
    checked = check(Columns(n, False, numbers, absent, texts), encoders, TrainingDomain({}, None), NumpyOps())
    if checked.problems:
        raise ValueError(f"{len(checked.problems)} problems in cleaned training rows, e.g. {checked.problems[:3]}")
    return checked.matrix


def train(splits: Splits, num_boost_round: int = NUM_BOOST_ROUND, log_every: int = 100) -> dict[str, Any]:
    """Fit encoders and model; return them with the metrics table's numbers."""
    step = _Steps()
    train_frame = splits.train
    encoders = Encoders.fit(
        train_frame["zipcode"].tolist(),
        train_frame["city_full"].astype(str).tolist(),
        train_frame[TARGET].to_numpy(),
        train_frame["lat"].to_numpy(),
        train_frame["lng"].to_numpy(),
    )
    step("fitted encoders on the train split")
    matrices = {name: features_of(getattr(splits, name), encoders) for name in ("train", "eval", "holdout")}
    targets = {name: getattr(splits, name)[TARGET].to_numpy(dtype=np.float64) for name in matrices}
    step("built features for train, eval and holdout")

    train_set = lightgbm.Dataset(matrices["train"], targets["train"], feature_name=_lgb_names(), free_raw_data=False)
    eval_set = lightgbm.Dataset(matrices["eval"], targets["eval"], reference=train_set)
    booster = lightgbm.train(
        PARAMS,
        train_set,
        num_boost_round=num_boost_round,
        valid_sets=[eval_set],
        valid_names=["eval"],
        callbacks=[
            lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False),
            lightgbm.log_evaluation(log_every),
        ],
    )
    step(f"trained LightGBM: best iteration {booster.best_iteration} of at most {num_boost_round}")

    baselines = {
        "median": MedianBaseline().fit(matrices["train"], targets["train"]),
        "linear": LinearBaseline().fit(matrices["train"], targets["train"]),
    }
    metrics = {}
    for split in ("eval", "holdout"):
        predictions = {"lightgbm": booster.predict(matrices[split], num_iteration=booster.best_iteration)}
        predictions.update({name: model.predict(matrices[split]) for name, model in baselines.items()})
        metrics[split] = {name: regression_metrics(targets[split], p) for name, p in predictions.items()}
    step("evaluated on eval and holdout")
    holdout_predictions = booster.predict(matrices["holdout"], num_iteration=booster.best_iteration)
    calibration = calibrate(holdout_predictions, targets["holdout"], splits.holdout["zipcode"].astype(str).tolist())
    step(f"calibrated intervals on the holdout split, kept {calibration.method}")
    return {
        "booster": booster,
        "encoders": encoders,
        "metrics": metrics,
        "ranges": _observed_ranges(matrices["train"]),
        "period": [f"{d:%Y-%m}" for d in pd.to_datetime(train_frame["date"]).agg(["min", "max"])],
        "calibration": calibration,
    }


def predict_frame(result: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    """Predictions of a trained result for raw HouseTS rows."""
    booster: lightgbm.Booster = result["booster"]
    return booster.predict(features_of(frame, result["encoders"]), num_iteration=booster.best_iteration)


def write_version(result: dict[str, Any], splits: Splits, out_dir: Path) -> Path:
    """Write model, encoders and manifest into `out_dir/<version>/` and point LATEST at it."""
    booster: lightgbm.Booster = result["booster"]
    model_text = booster.model_to_string(num_iteration=booster.best_iteration).encode()
    encoders_json = json.dumps(result["encoders"].to_dict(), sort_keys=True).encode()
    created = datetime.now(UTC)
    version = f"{created:%Y%m%dT%H%M%SZ}-{sha256(model_text)[:8]}"
    manifest = {
        "version": version,
        "created_at": created.isoformat(timespec="seconds"),
        "features": list(FEATURE_NAMES),
        "input_schema": input_schema(result["ranges"]),
        "training_period": result["period"],
        "lightgbm_version": lightgbm.__version__,
        "files": {MODEL_FILE: sha256(model_text), ENCODERS_FILE: sha256(encoders_json)},
        "training_data": {
            "fingerprint": fingerprint(splits.train),
            "rows": {"train": len(splits.train), "eval": len(splits.eval), "holdout": len(splits.holdout)},
            "dropped": splits.dropped,
        },
        "params": {**PARAMS, "best_iteration": booster.best_iteration},
        "metrics": result["metrics"],
        "intervals": result["calibration"].to_manifest(),
    }
    folder = out_dir / version
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(model_text)
    (folder / ENCODERS_FILE).write_bytes(encoders_json)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    (out_dir / LATEST).write_text(version + "\n")
    return folder


def input_schema(ranges: dict[str, list[float]]) -> dict[str, Any]:
    """Types, hard bounds (rejected outside) and the training range (extrapolation beyond)."""
    fields = {
        f.name: {
            "type": "integer" if f.integer else "number",
            "minimum": f.low,
            "maximum": f.high,
            "training_range": ranges[f.name],
        }
        for f in FEATURES
    }
    return {
        "pre_encoded": {"required": list(FEATURE_NAMES), "fields": fields},
        "raw": {
            "required": ["zipcode", "city_full", "date or year+month", *[f.name for f in PASSTHROUGH]],
            "optional": {"lat": "looked up from city_full", "lng": "looked up from city_full"},
            "fields": {
                "zipcode": {"type": "string", "pattern": "^[0-9]{1,5}$"},
                "city_full": {"type": "string"},
                "date": {"type": "string", "format": "date"},
                **{f.name: fields[f.name] for f in PASSTHROUGH},
            },
        },
    }


def _observed_ranges(matrix: np.ndarray) -> dict[str, list[float]]:
    return {name: [float(matrix[:, i].min()), float(matrix[:, i].max())] for i, name in enumerate(FEATURE_NAMES)}


def _lgb_names() -> list[str]:
    # LightGBM forbids spaces in feature names; the order, not the name, binds inputs.
    return [name.replace(" ", "_") for name in FEATURE_NAMES]


class _Steps:
    """Prints each finished step with the seconds since the start, so long runs show progress."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.start:6.1f}s] {message}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="HouseTS CSV; default: synthetic data")
    parser.add_argument("--metros", type=Path, help="US metros CSV (city, lat, lng) for --data")
    parser.add_argument("--zipcodes", type=int, default=300, help="synthetic size; 6226 is the real data's")
    parser.add_argument("--out", type=Path, default=Path("artifacts"))
    parser.add_argument("--num-boost-round", type=int, default=NUM_BOOST_ROUND)
    args = parser.parse_args()
    if args.data and not args.metros:
        parser.error("--data needs --metros (the CSV with city, lat, lng)")
    if args.data:
        houses, metros = args.data, args.metros
    else:
        houses, metros = generate_synthetic(Path("data/synthetic") / f"zipcodes-{args.zipcodes}", args.zipcodes)
        print(f"synthetic data: {houses}")
    frame, dropped = load_housets(houses, metros)
    splits = split_by_date(frame, dropped)
    for rule, count in dropped.items():
        print(f"dropped {count:>7,} rows: {rule}")
    print(f"rows: train {len(splits.train):,}, eval {len(splits.eval):,}, holdout {len(splits.holdout):,}")
    result = train(splits, args.num_boost_round)
    print(format_table(result["metrics"]))
    calibration = result["calibration"]
    if not args.data:
        calibration.coverage["fresh_draw"] = fresh_draw_coverage(
            calibration,
            lambda frame: predict_frame(result, frame),
            args.zipcodes,
            Path("data/synthetic") / f"zipcodes-{args.zipcodes}-draw-fresh",
        )
    print(format_coverage(calibration))
    folder = write_version(result, splits, args.out)
    print(f"wrote {folder} and pointed {args.out / LATEST} at it")


if __name__ == "__main__":
    main()
