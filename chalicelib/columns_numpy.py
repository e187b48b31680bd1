"""The column primitives of `chalicelib.columns` for numpy arrays: CSV blocks and training.

Kept out of `columns` so that the API function, which checks a request's records with plain
lists, never imports numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class NumpyOps:
    """Columns as float64 arrays: one vectorised pass per check over thousands of rows."""

    def column(self, values: Sequence[float]) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)

    def value(self, column: np.ndarray, row: int) -> float:
        return float(column[row])

    def cells_invalid(
        self, columns: Sequence[np.ndarray], limits: Sequence[tuple[float, float, bool]]
    ) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        with np.errstate(invalid="ignore"):
            for index, (column, (low, high, integer)) in enumerate(zip(columns, limits, strict=True)):
                bad = (column < low) | (column > high)
                if integer:
                    bad |= np.isfinite(column) & (column != np.floor(column))
                found.extend((index, row) for row in np.flatnonzero(bad).tolist())
        return found

    def rows_outside(self, column: np.ndarray, low: float, high: float) -> list[int]:
        with np.errstate(invalid="ignore"):
            return np.flatnonzero(((column < low) | (column > high)) & np.isfinite(column)).tolist()

    def rows_differ(self, a: np.ndarray, b: np.ndarray) -> list[int]:
        with np.errstate(invalid="ignore"):
            return np.flatnonzero((a != b) & ~np.isnan(a) & ~np.isnan(b)).tolist()

    def rows_equal(self, column: np.ndarray, value: float) -> list[int]:
        return np.flatnonzero(column == value).tolist()

    def quarters(self, months: np.ndarray) -> np.ndarray:
        whole = np.isin(months, np.arange(1, 13))
        return np.where(whole, (np.where(whole, months, 1) - 1) // 3 + 1, np.nan)

    def year_months(self, years: np.ndarray, months: np.ndarray) -> np.ndarray:
        return years * 12 + months - 1

    def fill_absent(self, column: np.ndarray, fill: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(column), fill, column)

    def matrix(self, columns: Sequence[np.ndarray], rows: Sequence[int]) -> np.ndarray:
        full = np.column_stack(columns) if columns else np.empty((0, 0))
        return full if len(rows) == len(full) else full[np.asarray(rows, dtype=np.intp)]
