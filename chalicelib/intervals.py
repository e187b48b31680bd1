"""Prediction intervals from a point prediction, in plain Python: the serving half of split conformal.

Training (training/intervals.py) measures relative residuals (actual - predicted) / predicted on
rows the model never saw and stores, per level, their lower and upper conformal quantiles: one
pair for all prices (`relative`), or one per band of predicted price (`price_band`). A prediction
p then gets [p * (1 + lower), p * (1 + upper)]. The same `Intervals.interval` computes training's
coverage check, so what training measured is what serving returns. No numpy: the API must not import it.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

METHODS = ("relative", "price_band")


class IntervalError(ValueError):
    """An interval level that was not calibrated, or a manifest entry that cannot be used."""


@dataclass(frozen=True)
class Level:
    """Relative residual quantiles at one level, one pair per price band (a single band for `relative`)."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]


@dataclass(frozen=True)
class Intervals:
    """Calibrated intervals: `interval(prediction, level)` is all serving needs."""

    method: str
    default_level: float
    band_edges: tuple[float, ...]
    levels: Mapping[float, Level]

    def interval(self, prediction: float, level: float | None = None) -> tuple[float, float]:
        """(lower, upper) around `prediction` at `level` (default: `default_level`); always contains it."""
        level = self.default_level if level is None else level
        quantiles = self.levels.get(level)
        if quantiles is None:
            raise IntervalError(f"level {level} is not calibrated; use one of {', '.join(map(str, self.levels))}")
        band = bisect_right(self.band_edges, prediction)
        low = prediction * (1.0 + quantiles.lower[band])
        high = prediction * (1.0 + quantiles.upper[band])
        return (low, high) if low <= high else (high, low)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "default_level": self.default_level,
            "band_edges": list(self.band_edges),
            "levels": {
                _level_key(level): {"lower": list(q.lower), "upper": list(q.upper)} for level, q in self.levels.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Intervals:
        """Read and check a manifest's `intervals` entry; extra keys (the coverage report) are ignored."""
        try:
            method = data["method"]
            default_level = float(data["default_level"])
            band_edges = tuple(float(edge) for edge in data["band_edges"])
            levels = {
                float(key): Level(tuple(map(float, value["lower"])), tuple(map(float, value["upper"])))
                for key, value in data["levels"].items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IntervalError(f"the intervals entry is malformed: {exc!r}") from None
        if method not in METHODS:
            raise IntervalError(f"unknown interval method {method!r}; known: {', '.join(METHODS)}")
        if method == "relative" and band_edges:
            raise IntervalError("the relative method has no price bands")
        if list(band_edges) != sorted(band_edges) or not all(map(math.isfinite, band_edges)):
            raise IntervalError("price band edges must be finite and ascending")
        if default_level not in levels:
            raise IntervalError(f"the default level {default_level} is not among the calibrated levels")
        for level, quantiles in levels.items():
            if not 0.0 < level < 1.0:
                raise IntervalError(f"level {level} is not between 0 and 1")
            if not len(quantiles.lower) == len(quantiles.upper) == len(band_edges) + 1:
                raise IntervalError(f"level {level} needs one lower and one upper per band ({len(band_edges) + 1})")
            for low, high in zip(quantiles.lower, quantiles.upper, strict=True):
                if not (-1.0 <= low <= 0.0 <= high and math.isfinite(high)):
                    raise IntervalError(f"level {level}: need -1 <= lower <= 0 <= upper, got {low}, {high}")
        return cls(method, default_level, band_edges, levels)


def _level_key(level: float) -> str:
    # JSON object keys are strings; repr gives "0.8" back for 0.8, and float() reads it exactly.
    return repr(level)
