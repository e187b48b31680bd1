"""What the benchmarks run on: a trained model version, lab records and generated CSVs.

Everything is made from `training.data.generate_synthetic` and `training.train`, and
cached under the cache folder by size, so a second run starts measuring at once.
Large CSVs repeat the synthetic feature rows: parsing and tree traversal cost the same
for a repeated row as for a new one, and the row count is what is being measured.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chalicelib.artifacts import LATEST, MODEL_FILE
from chalicelib.contract import FEATURE_NAMES, TARGET

LAB_REQUEST = Path(__file__).resolve().parents[1] / "examples" / "lab_request.json"


@dataclass(frozen=True)
class Model:
    """A trained version in a local artifact root, with the feature rows it was made from."""

    artifacts_dir: Path
    version: str
    zipcodes: int
    rounds: int
    trees: int
    features: np.ndarray
    target: np.ndarray
    train_rows: int

    @property
    def model_file(self) -> Path:
        return self.artifacts_dir / self.version / MODEL_FILE


def lab_records(path: Path = LAB_REQUEST) -> list[dict[str, Any]]:
    """The five records users of the lab already send, as parsed JSON objects."""
    return json.loads(path.read_text())["records"]


def trained_model(cache: Path, zipcodes: int, rounds: int, log: Any = print) -> Model:
    """Train on `zipcodes` synthetic zipcodes (or reuse the cached version) and return it."""
    folder = cache / f"model-z{zipcodes}-r{rounds}"
    artifacts_dir = folder / "artifacts"
    arrays = folder / "features.npz"
    if not (artifacts_dir / LATEST).is_file() or not arrays.is_file():
        _train(folder, zipcodes, rounds, log)
    version = (artifacts_dir / LATEST).read_text().strip()
    saved = np.load(arrays)
    manifest = json.loads((artifacts_dir / version / "manifest.json").read_text())
    trees = int(manifest["params"]["best_iteration"]) or rounds
    return Model(
        artifacts_dir,
        version,
        zipcodes,
        rounds,
        trees,
        saved["features"],
        saved["target"],
        int(manifest["training_data"]["rows"]["train"]),
    )


def _train(folder: Path, zipcodes: int, rounds: int, log: Any) -> None:
    from training.data import generate_synthetic, load_housets, split_by_date
    from training.train import features_of, train, write_version

    log(f"generating synthetic data ({zipcodes} zipcodes) and training at most {rounds} rounds")
    frame, dropped = load_housets(*generate_synthetic(folder / "data", zipcodes))
    splits = split_by_date(frame, dropped)
    result = train(splits, rounds, log_every=0)
    write_version(result, splits, folder / "artifacts")
    np.savez(
        folder / "features.npz",
        features=features_of(frame, result["encoders"]),
        target=frame[TARGET].to_numpy(dtype=np.float64),
    )


def repeated_rows(matrix: np.ndarray, rows: int) -> np.ndarray:
    """`rows` rows cycling through `matrix`."""
    return matrix[np.arange(rows) % len(matrix)]


def batch_input(model: Model, cache: Path, rows: int) -> tuple[Path, Path]:
    """A pre-encoded CSV of `rows` rows (header = the 39 features) and the same rows as .npy."""
    stem = cache / f"batch-z{model.zipcodes}-{rows}"
    csv, npy = stem.with_suffix(".csv"), stem.with_suffix(".npy")
    if not csv.is_file() or not npy.is_file():
        import pandas as pd

        matrix = repeated_rows(model.features, rows)
        pd.DataFrame(matrix, columns=list(FEATURE_NAMES)).to_csv(csv, index=False)
        np.save(npy, matrix)
    return csv, npy


def reference_training_csv(model: Model, cache: Path, rows: int) -> Path:
    """The tutorial's feature-engineered training CSV: `rows` rows, the 39 features and price."""
    path = cache / f"reference-training-z{model.zipcodes}-{rows}.csv"
    if not path.is_file():
        import pandas as pd

        frame = pd.DataFrame(repeated_rows(model.features, rows), columns=list(FEATURE_NAMES))
        frame[TARGET] = repeated_rows(model.target, rows)
        frame.to_csv(path, index=False)
    return path


def reference_model_pickle(model: Model) -> bytes:
    """The same model as the tutorial stores it: a pickled Booster (what joblib.dump writes too)."""
    import lightgbm

    return pickle.dumps(lightgbm.Booster(model_file=str(model.model_file)))
