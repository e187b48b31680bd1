"""Column primitives the input checks run on, for plain Python lists.

Why two implementations of these few primitives (this one, and `columns_numpy.NumpyOps`):
the API function answers one request without importing numpy (its cold start), while a CSV
block of 25,000 rows checked in pure Python costs more than predicting it. Which rule applies
and what it says exists once, in `chalicelib.pipeline`; only these primitives exist twice, and
tests/test_pipeline.py runs every check through both.

A column is a sequence of floats, NaN where a value is absent or unreadable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

Column = Any  # list[float] here, a float64 ndarray for NumpyOps
NAN = math.nan


class Ops(Protocol):
    """What the checks need from a column type."""

    def column(self, values: Sequence[float]) -> Column: ...

    def value(self, column: Column, row: int) -> float: ...

    def cells_invalid(
        self, columns: Sequence[Column], limits: Sequence[tuple[float, float, bool]]
    ) -> list[tuple[int, int]]:
        """(column index, row) of every present (not NaN) value that is infinite, outside its column's
        [low, high], or, where the column's flag says integer, not a whole number. All columns in one
        call: a request checks 39 of them, and a call per column costs more than the check."""
        ...

    def rows_outside(self, column: Column, low: float, high: float) -> list[int]:
        """Rows with a finite value below `low` or above `high`."""
        ...

    def rows_differ(self, a: Column, b: Column) -> list[int]:
        """Rows where both values are present and differ."""
        ...

    def rows_equal(self, column: Column, value: float) -> list[int]: ...

    def quarters(self, months: Column) -> Column:
        """The quarter of each whole month in 1..12, NaN elsewhere."""
        ...

    def year_months(self, years: Column, months: Column) -> Column:
        """Months since year 0 (year * 12 + month - 1): orders dates by month."""
        ...

    def fill_absent(self, column: Column, fill: Column) -> Column:
        """`column` with its NaN values replaced by `fill`'s."""
        ...

    def matrix(self, columns: Sequence[Column], rows: Sequence[int]) -> Any:
        """The given rows of the columns as a row-major matrix, one row per input row."""
        ...


class ListOps:
    """Columns as Python lists: for a request's few records, where importing numpy costs more than it saves."""

    def column(self, values: Sequence[float]) -> list[float]:
        return list(values)

    def value(self, column: list[float], row: int) -> float:
        return column[row]

    def cells_invalid(
        self, columns: Sequence[list[float]], limits: Sequence[tuple[float, float, bool]]
    ) -> list[tuple[int, int]]:
        # NaN != NaN: `v == v` keeps absent values out; an infinity is outside any finite bounds.
        return [
            (c, r)
            for c, (column, (low, high, integer)) in enumerate(zip(columns, limits, strict=True))
            for r, v in enumerate(column)
            if v == v and not (low <= v <= high and (not integer or v.is_integer()))
        ]

    def rows_outside(self, column: list[float], low: float, high: float) -> list[int]:
        return [r for r, v in enumerate(column) if (v < low or v > high) and not math.isinf(v)]

    def rows_differ(self, a: list[float], b: list[float]) -> list[int]:
        # NaN != anything, so "both present" must be tested, not left to the comparison.
        return [r for r, (x, y) in enumerate(zip(a, b, strict=True)) if x != y and x == x and y == y]

    def rows_equal(self, column: list[float], value: float) -> list[int]:
        return [r for r, v in enumerate(column) if v == value]

    def quarters(self, months: list[float]) -> list[float]:
        return [float((int(m) - 1) // 3 + 1) if m in _MONTHS else NAN for m in months]

    def year_months(self, years: list[float], months: list[float]) -> list[float]:
        return [y * 12 + m - 1 for y, m in zip(years, months, strict=True)]

    def fill_absent(self, column: list[float], fill: list[float]) -> list[float]:
        return [f if v != v else v for v, f in zip(column, fill, strict=True)]

    def matrix(self, columns: Sequence[list[float]], rows: Sequence[int]) -> list[list[float]]:
        return [[c[r] for c in columns] for r in rows]


_MONTHS = frozenset(float(m) for m in range(1, 13))


def map_distinct[T](values: Sequence[Any], fn: Callable[[Any], T]) -> list[T]:
    """`fn` of each value, computed once per distinct value: a CSV block repeats a few hundred identifiers."""
    seen: dict[tuple[type, Any], T] = {}
    out: list[T] = []
    for value in values:
        if not isinstance(value, str | int | float | type(None)):
            out.append(fn(value))  # unhashable JSON values (objects, arrays) are rare and all errors
            continue
        key = (type(value), value)  # the type too: True == 1, but only 1 is a zipcode
        if key not in seen:
            seen[key] = fn(value)
        out.append(seen[key])
    return out
