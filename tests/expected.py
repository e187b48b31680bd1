"""What the service should answer, computed without the route: the JSON pipeline run directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from chalicelib.columns import ListOps
from chalicelib.pipeline import check
from chalicelib.predictor import Predictor
from chalicelib.records import to_columns


def json_features(records: list[dict], predictor: Predictor) -> np.ndarray:
    """The feature matrix of valid JSON records, in request order; fails the test on any problem."""
    split = to_columns(records)
    rows: list[list[float]] = [[] for _ in records]
    for indices, columns in split.groups:
        checked = check(columns, predictor.encoders, predictor.domain, ListOps())
        assert not checked.problems, checked.problems
        for row, values in zip(checked.rows, checked.matrix, strict=True):
            rows[indices[row]] = values
    assert not split.problems, split.problems
    return np.array(rows, dtype=np.float64)


def reference_predict(artifacts_dir: Path, matrix: object) -> np.ndarray:
    """What the lightgbm package itself predicts for the LATEST version: the oracle the service's
    native engine must match bit for bit."""
    import lightgbm

    version = (artifacts_dir / "LATEST").read_text().strip()
    booster = lightgbm.Booster(model_file=str(artifacts_dir / version / "model.txt"))
    return booster.predict(np.asarray(matrix, dtype=np.float64), num_threads=1)
