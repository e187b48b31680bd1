"""What the service should answer, computed without the route: the JSON pipeline run directly."""

from __future__ import annotations

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
