"""Train the house-price model and write a versioned artifact folder.

    python -m training.train                         # synthetic data (the default)
    python -m training.train --data HouseTS.csv --metros us_metros.csv
    python -m training.train --params best.json      # parameters found by `python -m training.tune`

Encoders are fitted on the training split only; LightGBM stops early on the eval split;
the holdout split (2022 on) reports the final table, calibrates the prediction intervals
(training/intervals.py says why there), and feeds the version's report (`report.html`) and
model card (`model_card.md`), both written into the version.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd

from chalicelib.artifacts import ENCODERS_FILE, LATEST, MODEL_FILE, sha256
from chalicelib.contract import FEATURE_NAMES, FEATURES, PASSTHROUGH, TARGET
from chalicelib.encoders import Encoders
from training.data import Splits, features_of, fingerprint, load_splits
from training.evaluate import LinearBaseline, MedianBaseline, format_table, regression_metrics
from training.intervals import calibrate, format_coverage, fresh_draw_coverage
from training.params import ParamsError, load_params
from training.report import write_documents

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


def fit_encoders(train_frame: pd.DataFrame) -> Encoders:
    return Encoders.fit(
        train_frame["zipcode"].tolist(),
        train_frame["city_full"].astype(str).tolist(),
        train_frame[TARGET].to_numpy(),
        train_frame["lat"].to_numpy(),
        train_frame["lng"].to_numpy(),
    )


def train(
    splits: Splits,
    num_boost_round: int = NUM_BOOST_ROUND,
    log_every: int = 100,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit encoders and model (PARAMS, overridden by `params`); return them with the metrics table's numbers."""
    step = _Steps()
    tuned = params or {}
    params = {**PARAMS, **tuned}
    encoders = fit_encoders(splits.train)
    step("fitted encoders on the train split")
    matrices = {name: features_of(getattr(splits, name), encoders) for name in ("train", "eval", "holdout")}
    targets = {name: getattr(splits, name)[TARGET].to_numpy(dtype=np.float64) for name in matrices}
    step("built features for train, eval and holdout")

    train_set = lightgbm.Dataset(matrices["train"], targets["train"], feature_name=_lgb_names(), free_raw_data=False)
    eval_set = lightgbm.Dataset(matrices["eval"], targets["eval"], reference=train_set)
    booster = lightgbm.train(
        params,
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
        "params": params,
        "tuned": sorted(tuned),
        "ranges": _observed_ranges(matrices["train"]),
        "period": [f"{d:%Y-%m}" for d in pd.to_datetime(splits.train["date"]).agg(["min", "max"])],
        "calibration": calibration,
    }


def predict_frame(result: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    """Predictions of a trained result for raw HouseTS rows."""
    booster: lightgbm.Booster = result["booster"]
    return booster.predict(features_of(frame, result["encoders"]), num_iteration=booster.best_iteration)


def write_version(result: dict[str, Any], splits: Splits, out_dir: Path, source: str = "not recorded") -> Path:
    """Write model, encoders, report, card and manifest into `out_dir/<version>/` and point LATEST at it.

    `source` says in the card where the data came from (a file, or the synthetic generator).
    """
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
        "toolchain": {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__},
        "training_data": {
            "source": source,
            "fingerprint": fingerprint(splits.train),
            "rows": {"train": len(splits.train), "eval": len(splits.eval), "holdout": len(splits.holdout)},
            "period": {name: _period(getattr(splits, name)) for name in ("train", "eval", "holdout")},
            "dropped": splits.dropped,
        },
        "params": {**result["params"], "best_iteration": booster.best_iteration},
        "tuned": result["tuned"],
        "metrics": result["metrics"],
        "intervals": result["calibration"].to_manifest(),
    }
    folder = out_dir / version
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(model_text)
    (folder / ENCODERS_FILE).write_bytes(encoders_json)
    write_documents(folder, manifest, splits)  # report and card, then the manifest with all checksums
    (out_dir / LATEST).write_text(version + "\n")
    return folder


def _period(frame: pd.DataFrame) -> list[str]:
    return [str(frame["date"].min()), str(frame["date"].max())] if len(frame) else []


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
    parser.add_argument("--params", type=Path, help="JSON object of tuned LightGBM parameters (training.tune's output)")
    args = parser.parse_args()
    if args.data and not args.metros:
        parser.error("--data needs --metros (the CSV with city, lat, lng)")
    try:
        params = load_params(args.params) if args.params else {}
    except ParamsError as exc:
        parser.error(str(exc))
    splits, source = load_splits(args.data, args.metros, args.zipcodes)
    result = train(splits, args.num_boost_round, params=params)
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
    folder = write_version(result, splits, args.out, source)
    print(f"wrote {folder} and pointed {args.out / LATEST} at it")


if __name__ == "__main__":
    main()
