"""Validation of prediction requests: every problem named by record and field, nothing filled in.

A record is either pre-encoded (it carries `zipcode_freq`/`city_encoded`, like the lab
request) and must hold all 39 features, or raw (zipcode, city_full, date or year+month,
and the numeric columns), from which the encoders derive the rest. Values outside the
contract's bounds are rejected, not clipped: a model answer for an impossible input would
look trustworthy and is not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chalicelib.contract import (
    CALENDAR,
    DROPPED,
    FEATURE_NAMES,
    FEATURES,
    LOCATION,
    PASSTHROUGH,
    RAW_KEYS,
    TARGET,
    normalize_zipcode,
    parse_date,
    quarter_of,
)
from chalicelib.encoders import Encoders
from chalicelib.features import build_features

KNOWN_KEYS = frozenset((*FEATURE_NAMES, *RAW_KEYS, *DROPPED))
_LOWS = np.array([f.low for f in FEATURES])
_HIGHS = np.array([f.high for f in FEATURES])
_INTEGER = np.array([f.integer for f in FEATURES])
_YEAR, _QUARTER, _MONTH = (FEATURE_NAMES.index(f.name) for f in CALENDAR)
_PASSTHROUGH = [FEATURE_NAMES.index(f.name) for f in PASSTHROUGH]
_EXACT = 2**53  # ints beyond this lose precision as floats; huge ones overflow: both go the slow way


class NonFinite(float):
    """A NaN/Infinity literal from a JSON body, kept so validation can name its field."""

    def __new__(cls, literal: str) -> NonFinite:
        value = super().__new__(cls, literal.replace("Infinity", "inf"))
        value.literal = literal
        return value

    literal: str


@dataclass(frozen=True)
class Problem:
    """What is wrong (or, as a warning, surprising) with one field of one record."""

    record: int
    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"record": self.record, "field": self.field, "message": self.message}


@dataclass
class Validated:
    """A checked request: the model matrix when there are no errors, and what was found."""

    matrix: np.ndarray | None
    errors: list[Problem]
    warnings: list[Problem] = field(default_factory=list)
    actuals: list[float] | None = None


def check_number(value: object) -> tuple[float, str | None]:
    """The JSON value as a float, or why it is not a finite number. Bounds come later."""
    if isinstance(value, NonFinite):
        return math.nan, f"must be a finite number, got {value.literal}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan, f"must be a number, got {_json_type(value)}"
    try:
        return float(value), None
    except OverflowError:
        return math.nan, "must be a finite number, got one too large to represent"


def out_of_bounds(matrix: np.ndarray) -> list[tuple[int, int, str]]:
    """(row, feature index, reason) for every cell outside the contract's bounds.

    NaN cells are skipped: callers know why a value is absent and say so themselves.
    """
    with np.errstate(invalid="ignore"):
        bad = np.isinf(matrix) | (matrix < _LOWS) | (matrix > _HIGHS)
        bad |= _INTEGER & np.isfinite(matrix) & (matrix != np.floor(matrix))
    return [(int(r), int(c), f"must be {FEATURES[c].describe()}, got {matrix[r, c]:g}") for r, c in np.argwhere(bad)]


def validate_records(records: Sequence[Any], encoders: Encoders) -> Validated:
    """Check every record; build the model matrix only if all of them are valid."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    rows: list[list[float]] = []
    raw: list[int] = []
    actuals: list[float] = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            errors.append(Problem(index, "", f"a record must be a JSON object, got {_json_type(record)}"))
            rows.append([math.nan] * len(FEATURE_NAMES))
            continue
        warnings.extend(Problem(index, str(k)[:100], "unknown field, ignored") for k in record if k not in KNOWN_KEYS)
        if TARGET in record:
            price, reason = check_number(record[TARGET])
            if reason is None and price < 0:
                reason = f"must not be negative, got {price:g}"
            if reason:
                errors.append(Problem(index, TARGET, reason))
            actuals.append(price)
        if "zipcode_freq" in record or "city_encoded" in record:
            rows.append(_encoded_row(index, record, errors))
        else:
            raw.append(index)
            rows.append(_raw_row(index, record, encoders, errors, warnings))
    matrix = np.array(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))
    errors.extend(Problem(r, FEATURE_NAMES[c], reason) for r, c, reason in out_of_bounds(matrix))
    if errors:
        errors.sort(key=lambda p: p.record)
        return Validated(None, errors, warnings)
    errors.extend(Problem(row, "quarter", reason) for row, reason in quarter_mismatches(matrix))
    if errors:
        return Validated(None, errors, warnings)
    if raw:
        matrix[raw] = _encode_raw([records[i] for i in raw], matrix[raw], encoders)
    return Validated(matrix, [], warnings, actuals if len(actuals) == len(records) else None)


def _encoded_row(index: int, record: dict[str, Any], errors: list[Problem]) -> list[float]:
    try:
        row = [record[name] for name in FEATURE_NAMES]
    except KeyError:
        row = []
    # Fast path for the common case: all present, all plain floats or float-sized ints.
    # NonFinite is a float subclass and bool an int subclass, so neither passes `type(...) is`.
    if row and all(type(v) is float or (type(v) is int and -_EXACT < v < _EXACT) for v in row):
        return row
    return _numbers(index, record, FEATURE_NAMES, errors, "missing")


def _numbers(
    index: int, record: dict[str, Any], names: Sequence[str], errors: list[Problem], if_missing: str
) -> list[float]:
    """The named values as floats, NaN where a value is missing or not a number (each named in errors)."""
    values: list[float] = []
    for name in names:
        if name not in record:
            errors.append(Problem(index, name, if_missing))
            values.append(math.nan)
            continue
        number, reason = check_number(record[name])
        if reason:
            errors.append(Problem(index, name, reason))
        values.append(number)
    return values


def _raw_row(
    index: int, record: dict[str, Any], encoders: Encoders, errors: list[Problem], warnings: list[Problem]
) -> list[float]:
    """A raw record's row: calendar and passthrough values; encoded features come later."""
    row = [math.nan] * len(FEATURE_NAMES)
    row[_YEAR], row[_MONTH] = _calendar(index, record, errors)
    row[_QUARTER] = quarter_of(int(row[_MONTH])) if math.isfinite(row[_MONTH]) else math.nan
    zipcode = record.get("zipcode")
    if zipcode is None:
        errors.append(
            Problem(
                index,
                "zipcode",
                "missing (a raw record needs zipcode and city_full; "
                "a pre-encoded one needs zipcode_freq and city_encoded)",
            )
        )
    else:
        try:
            normalize_zipcode(zipcode)
        except ValueError as exc:
            errors.append(Problem(index, "zipcode", str(exc)))
    city = record.get("city_full")
    if not isinstance(city, str) or not city.strip():
        reason = "missing" if city is None else f"must be a non-empty string, got {_json_type(city)}"
        errors.append(Problem(index, "city_full", reason))
        city = None
    location = encoders.locations.lookup(city) if city else None
    for spec in PASSTHROUGH:
        column = FEATURE_NAMES.index(spec.name)
        if spec.name in record:
            row[column], reason = check_number(record[spec.name])
            if reason:
                errors.append(Problem(index, spec.name, reason))
        elif spec in LOCATION and location is not None:
            row[column] = location[LOCATION.index(spec)]
            warnings.append(Problem(index, spec.name, f"not given; taken from city_full {city!r}"))
        elif spec in LOCATION:
            known = f"city_full {city!r} is not a known city" if city else "there is no city_full"
            errors.append(Problem(index, spec.name, f"missing, and {known} to look it up from"))
        else:
            errors.append(Problem(index, spec.name, "missing"))
    return row


def _calendar(index: int, record: dict[str, Any], errors: list[Problem]) -> tuple[float, float]:
    """Year and month of a raw record, from `date` or from `year` and `month`."""
    if "date" in record:
        text = record["date"]
        try:
            if not isinstance(text, str):
                raise ValueError
            year, month = parse_date(text)
        except ValueError:
            shown = repr(text[:40]) if isinstance(text, str) else _json_type(text)
            errors.append(Problem(index, "date", f"must be an ISO date like 2021-07-01, got {shown}"))
            return math.nan, math.nan
        return float(year), float(month)
    year, month = _numbers(index, record, ("year", "month"), errors, "missing (give date, or year and month)")
    return year, month


def quarter_mismatches(matrix: np.ndarray) -> list[tuple[int, str]]:
    """(row, reason) where a row's quarter disagrees with its month; rows lacking either are skipped.

    Pre-encoded inputs carry both, so they must agree; raw rows derive quarter from month.
    """
    months, quarters = matrix[:, _MONTH], matrix[:, _QUARTER]
    known = np.isfinite(quarters) & np.isin(months, np.arange(1, 13))
    expected = quarter_of(np.where(known, months, 1).astype(np.int64))
    return [
        (int(r), f"is {quarters[r]:g}, but month {months[r]:g} is in quarter {expected[r]}")
        for r in np.flatnonzero(known & (quarters != expected))
    ]


def _encode_raw(records: list[dict[str, Any]], rows: np.ndarray, encoders: Encoders) -> np.ndarray:
    return build_features(
        rows[:, _YEAR],
        rows[:, _MONTH],
        [r["zipcode"] for r in records],
        [r["city_full"] for r in records],
        rows[:, _PASSTHROUGH],
        encoders,
    )


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)
