"""Regression metrics, the baselines a model must beat, and the table that compares them."""

from __future__ import annotations

import numpy as np


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    error = predicted - actual
    total = float(((actual - actual.mean()) ** 2).sum())
    return {
        "MAE": float(np.abs(error).mean()),
        "RMSE": float(np.sqrt((error**2).mean())),
        "R2": 1.0 - float((error**2).sum()) / total,
        "MAPE": float(np.abs(error / actual).mean() * 100),
    }


class MedianBaseline:
    """Predicts the median training price for everything: the floor any model must clear."""

    def fit(self, matrix: np.ndarray, target: np.ndarray) -> MedianBaseline:
        self.median = float(np.median(target))
        return self

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return np.full(len(matrix), self.median)


class LinearBaseline:
    """Ordinary least squares on standardized features: what a tree model has to beat."""

    def fit(self, matrix: np.ndarray, target: np.ndarray) -> LinearBaseline:
        self.mean = matrix.mean(axis=0)
        self.scale = np.where(matrix.std(axis=0) > 0, matrix.std(axis=0), 1.0)
        design = self._design(matrix)
        self.coef, *_ = np.linalg.lstsq(design, target, rcond=None)
        return self

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return self._design(matrix) @ self.coef

    def _design(self, matrix: np.ndarray) -> np.ndarray:
        scaled = (matrix - self.mean) / self.scale
        return np.hstack([np.ones((len(matrix), 1)), scaled])


def format_table(metrics: dict[str, dict[str, dict[str, float]]]) -> str:
    """metrics[split][model] -> a fixed-width table, one row per split and model."""
    lines = [f"{'split':<8} {'model':<10} {'MAE':>12} {'RMSE':>12} {'R2':>8} {'MAPE %':>8}"]
    for split, models in metrics.items():
        for model, m in models.items():
            lines.append(
                f"{split:<8} {model:<10} {m['MAE']:>12,.0f} {m['RMSE']:>12,.0f} {m['R2']:>8.4f} {m['MAPE']:>8.2f}"
            )
    return "\n".join(lines)
