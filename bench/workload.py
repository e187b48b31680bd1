"""What the benchmarks run on: a trained model version, lab records and generated CSVs.

Everything is made from `training.data.generate_synthetic` and `training.train`, and
cached under the cache folder by size, so a second run starts measuring at once.
Large CSVs repeat the synthetic feature rows: parsing and tree traversal cost the same
for a repeated row as for a new one, and the row count is what is being measured.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chalicelib.artifacts import ENCODERS_FILE, LATEST, MODEL_FILE
from chalicelib.contract import FEATURE_NAMES, TARGET


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
    from testkit.models import train_model
    from training.train import features_of

    log(f"generating synthetic data ({zipcodes} zipcodes) and training at most {rounds} rounds")
    model = train_model(folder, zipcodes, rounds)
    np.savez(
        folder / "features.npz",
        features=features_of(model.frame, model.result["encoders"]),
        target=model.frame[TARGET].to_numpy(dtype=np.float64),
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


def reference_joblib_files(model: Model) -> dict[str, bytes]:
    """The tutorial's two joblib files: the model as a pickled Booster, the encoders as a dict of maps."""
    import joblib
    import lightgbm

    state = json.loads((model.artifacts_dir / model.version / ENCODERS_FILE).read_text())
    objects = {
        "model": lightgbm.Booster(model_file=str(model.model_file)),
        "encoders": {
            "zipcode_freq": state["zipcode_freq"]["counts"],
            "city_encoded": state["city_encoded"]["means"],
            "global_mean": state["city_encoded"]["global_mean"],
        },
    }
    files = {}
    for name, value in objects.items():
        buffer = io.BytesIO()
        joblib.dump(value, buffer)
        files[name] = buffer.getvalue()
    return files
