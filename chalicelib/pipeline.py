"""The one way in: columns of input -> checks -> model features, for JSON records and CSV blocks alike.

An input adapter (`chalicelib.records` for JSON, `chalicelib.batch.cells` for CSV) turns what it
received into `Columns`: one column per field, NaN where a value is absent or unreadable, with
the reason for every unreadable cell. `check` then applies every rule once, in one place, and
the same rule says the same thing on every path:

- hard bounds (outside: an error; the value is impossible, so no answer would be trustworthy),
- identifiers (zipcode, city), calendar (`date` or `year`/`month`), their contradictions,
- lat/lng looked up from a known city when absent (said in a warning),
- features through the fitted encoders,
- warnings for what the model never saw: an unseen zipcode or city (and what was used in its
  place), and values outside the training data's ranges or period (the model extrapolates).

Rows with an error get no features; every other row does. Nothing is filled in silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from chalicelib.columns import NAN, Column, Ops, map_distinct
from chalicelib.contract import (
    CALENDAR,
    FEATURE_NAMES,
    FEATURES,
    IDENTIFIERS,
    LOCATION,
    PASSTHROUGH,
    json_type,
    normalize_city,
    normalize_zipcode,
    parse_date,
    quarter_of,
)
from chalicelib.encoders import Encoders

# Problems of one record are listed in this order: identifiers, then the contract's order.
FIELD_ORDER = {name: i for i, name in enumerate((*IDENTIFIERS, *FEATURE_NAMES))}
_REQUIRED_RAW = tuple(f.name for f in PASSTHROUGH if f not in LOCATION)
_CALENDAR_NAMES = tuple(f.name for f in CALENDAR)
_LIMITS = [(f.low, f.high, f.integer) for f in FEATURES]
_MISSING_IDENTIFIER = (
    "missing (a raw record needs zipcode and city_full; a pre-encoded one needs zipcode_freq and city_encoded)"
)


class Problem(NamedTuple):
    """What is wrong (or, as a warning, doubtful) with one field of one record.

    A named tuple ordered by record, then by the field's place in FIELD_ORDER, so a plain
    `sorted` lists a reply's problems record by record, identifiers first, in C: a CSV block
    may hold tens of thousands of warnings. Make one with `Problem.of`.
    """

    record: int
    order: int
    field: str
    message: str

    @classmethod
    def of(cls, record: int, field: str, message: str) -> Problem:
        return cls(record, FIELD_ORDER.get(field, len(FIELD_ORDER)), field, message)

    def moved(self, record: int) -> Problem:
        """The same problem for another record index (a group's row -> the request's record)."""
        return self._replace(record=record)

    def to_dict(self) -> dict[str, Any]:
        return {"record": self.record, "field": self.field, "message": self.message}


@dataclass
class Columns:
    """Rows of one kind (all pre-encoded, or all raw) as columns, as an input adapter delivers them.

    `numbers` has a column for every model feature (NaN where absent or unreadable); `absent`
    lists, per field, the rows where it was not given at all; `texts` holds the identifier
    fields as given (None where absent); `unreadable` says why each unreadable cell is.
    """

    rows: int
    encoded: bool
    numbers: dict[str, Column]
    absent: dict[str, list[int]]
    texts: dict[str, list[Any]]
    unreadable: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class TrainingDomain:
    """What the model saw in training: each feature's range, and the period (as year * 12 + month - 1)."""

    ranges: dict[str, tuple[float, float]]
    period: tuple[int, int] | None

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> TrainingDomain:
        fields = manifest.get("input_schema", {}).get("pre_encoded", {}).get("fields", {})
        ranges = {
            name: (float(spec["training_range"][0]), float(spec["training_range"][1])) for name, spec in fields.items()
        }
        period = manifest.get("training_period")
        if period:
            first, last = (parse_date(p) for p in period)
            return cls(ranges, (first[0] * 12 + first[1] - 1, last[0] * 12 + last[1] - 1))
        if "year" in ranges:  # manifests before training_period: whole years
            low, high = ranges["year"]
            return cls(ranges, (int(low) * 12, int(high) * 12 + 11))
        return cls(ranges, None)


@dataclass
class Checked:
    """The outcome for a group of rows: features of the rows without errors, and what was found."""

    rows: list[int]  # the rows that have features, in order
    matrix: Any  # one feature row per entry of `rows` (a list of lists, or an ndarray)
    problems: list[Problem]
    warnings: list[Problem]


def number_problem(text: str) -> str:
    """Why a CSV cell is not a usable number (a JSON value's reason is `records._number`'s)."""
    try:
        value = float(text)
    except ValueError:
        return f"must be a number, got {text[:40]!r}"
    return (
        f"must be a finite number, got {text[:40]!r}"
        if not math.isfinite(value)
        else f"must be a number, got {text[:40]!r}"
    )


def check(columns: Columns, encoders: Encoders, domain: TrainingDomain, ops: Ops) -> Checked:
    """Every rule over a group of rows; see the module docstring."""
    found = _Found(columns, ops)
    found.problems.extend(columns.unreadable)
    numbers = dict(columns.numbers)
    found.bounds(numbers)
    if columns.encoded:
        for name in FEATURE_NAMES:
            found.missing(name, "missing")
        dates = _dates(columns, found, ops)
        if dates is not None:
            found.contradictions(dates, numbers["year"], numbers["month"], numbers["quarter"])
        found.quarter_agrees(numbers["quarter"], numbers["month"], dates[2] if dates else None)
        feature_columns = [numbers[name] for name in FEATURE_NAMES]
        found.unseen_encodings(numbers["zipcode_freq"], numbers["city_encoded"], encoders)
    else:
        feature_columns = _raw_features(columns, numbers, encoders, found, ops)
    year, month = feature_columns[FEATURE_NAMES.index("year")], feature_columns[FEATURE_NAMES.index("month")]
    found.extrapolation(feature_columns, year, month, domain, columns.encoded)
    return found.result(feature_columns)


def _raw_features(
    columns: Columns, numbers: dict[str, Column], encoders: Encoders, found: _Found, ops: Ops
) -> list[Column]:
    n = columns.rows
    zipcodes = map_distinct(columns.texts.get("zipcode", [None] * n), _zipcode)
    for row, (_, reason) in enumerate(zipcodes):
        if reason:
            found.problem(row, "zipcode", reason)
    cities = map_distinct(columns.texts.get("city_full", [None] * n), _city)
    for row, (_, reason) in enumerate(cities):
        if reason:
            found.problem(row, "city_full", reason)

    dates = _dates(columns, found, ops)
    years, months = numbers["year"], numbers["month"]
    if dates is not None:
        found.contradictions(dates, years, months, numbers["quarter"])
        first, last = CALENDAR[0].low, CALENDAR[0].high
        for row in ops.rows_outside(dates[0], first, last):
            found.problem(row, "date", f"must be a date in the years {first:g} to {last:g}, got {dates[2][row]!r}")
        years, months = ops.fill_absent(dates[0], years), ops.fill_absent(dates[1], months)
        given = dates[2]
    else:
        given = [None] * n
    dated = columns.texts.get("date") or [None] * n  # a date given, even a bad one, stands for year and month
    for name in ("year", "month"):
        for row in columns.absent.get(name, ()):
            if dated[row] is None:
                found.problem(row, name, "missing (give date, or year and month)")
    found.quarter_agrees(numbers["quarter"], months, given)
    for name in _REQUIRED_RAW:
        found.missing(name, "missing")

    keys = [key for key, _ in cities]
    located = {key: encoders.locations.lookup(key) for key in set(keys) if key is not None}
    city_texts = columns.texts.get("city_full") or [None] * n
    filled: dict[str, Column] = {}
    for index, spec in enumerate(LOCATION):
        looked_up = ops.column([(located.get(k) or (NAN, NAN))[index] if k is not None else NAN for k in keys])
        filled[spec.name] = ops.fill_absent(numbers[spec.name], looked_up)
        by_city: dict[tuple[type, Any], list[int]] = {}  # a block repeats a few hundred cities
        for row in columns.absent.get(spec.name, ()):
            city = city_texts[row]
            # A JSON object or array as a city is an error of its own; it is grouped alone.
            by_city.setdefault((city.__class__, city if isinstance(city, str | None) else row), []).append(row)
        for rows in by_city.values():
            city, key = city_texts[rows[0]], keys[rows[0]]
            is_warning, message = _location_message(city, located.get(key) is not None, key)
            if is_warning:
                found.warn_rows(rows, spec.name, message)
            else:
                found.problems.extend(Problem.of(row, spec.name, message) for row in rows)

    zipcode_freq = ops.column(encoders.zipcode.transform([z for z, _ in zipcodes]))
    city_encoded = ops.column(encoders.city.transform(keys))
    for row, (z, _) in enumerate(zipcodes):
        if z and z not in encoders.zipcode.counts:
            found.warning(row, "zipcode", f"{z} is not in the training data: scored as unseen (zipcode_freq 0)")
    mean = encoders.city.global_mean
    for row, key in enumerate(keys):
        if key and key not in encoders.city.means:
            found.warning(
                row,
                "city_full",
                f"{columns.texts['city_full'][row]!r} is not in the training data: "
                f"scored with city_encoded {mean:,.0f}, the mean training price",
            )
    by_name = {
        **numbers,
        "year": years,
        "month": months,
        "quarter": ops.quarters(months),
        **filled,
        "zipcode_freq": zipcode_freq,
        "city_encoded": city_encoded,
    }
    return [by_name[name] for name in FEATURE_NAMES]


def _dates(columns: Columns, found: _Found, ops: Ops) -> tuple[Column, Column, list[str | None]] | None:
    """Year and month columns of the `date` field (NaN where absent or bad), and the texts given."""
    texts = columns.texts.get("date")
    if texts is None or all(t is None for t in texts):
        return None
    parsed = map_distinct(texts, _date)
    for row, (_, reason) in enumerate(parsed):
        if reason:
            found.problem(row, "date", reason)
    years = ops.column([ym[0] if ym else NAN for ym, _ in parsed])
    months = ops.column([ym[1] if ym else NAN for ym, _ in parsed])
    return years, months, [t if ym else None for t, (ym, _) in zip(texts, parsed, strict=True)]


class _Found:
    """Problems and warnings of a group, and the checks that add them."""

    def __init__(self, columns: Columns, ops: Ops) -> None:
        self.columns, self.ops, self.n = columns, ops, columns.rows
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def problem(self, row: int, name: str, message: str) -> None:
        self.problems.append(Problem.of(row, name, message))

    def warning(self, row: int, name: str, message: str) -> None:
        self.warnings.append(Problem.of(row, name, message))

    def warn_rows(self, rows: Iterable[int], name: str, message: str) -> None:
        """The same warning for many rows at once: what a CSV block mostly has."""
        order = FIELD_ORDER.get(name, len(FIELD_ORDER))
        self.warnings.extend(Problem(row, order, name, message) for row in rows)

    def missing(self, name: str, reason: str) -> None:
        rows = self.columns.absent.get(name)
        if rows:
            self.problems.extend(Problem.of(row, name, reason) for row in rows)

    def bounds(self, numbers: dict[str, Column]) -> None:
        """Hard bounds: an infinity, a value outside them, a fraction where a whole number belongs."""
        columns = [numbers[spec.name] for spec in FEATURES]
        for index, row in self.ops.cells_invalid(columns, _LIMITS):
            spec, value = FEATURES[index], self.ops.value(columns[index], row)
            if math.isinf(value):
                self.problem(row, spec.name, f"must be a finite number, got {value}")
            else:
                self.problem(row, spec.name, f"must be {spec.describe()}, got {value:g}")

    def contradictions(
        self, dates: tuple[Column, Column, list[str | None]], years: Column, months: Column, quarters: Column
    ) -> None:
        """`date` against `year`, `month` and `quarter` given beside it."""
        ops = self.ops
        date_years, date_months, texts = dates
        date_quarters = ops.quarters(date_months)
        for name, given, implied, unit in (
            ("year", years, date_years, "year"),
            ("month", months, date_months, "month"),
            ("quarter", quarters, date_quarters, "quarter"),
        ):
            for row in ops.rows_differ(given, implied):
                self.problem(
                    row,
                    name,
                    f"is {ops.value(given, row):g}, but date {texts[row]!r} is in {unit} {ops.value(implied, row):g}",
                )

    def quarter_agrees(self, quarters: Column, months: Column, dates: list[str | None] | None) -> None:
        """`quarter` against `month`, where no date was given (a date's contradictions are named already)."""
        ops = self.ops
        for row in ops.rows_differ(quarters, ops.quarters(months)):
            if dates is None or dates[row] is None:
                q, m = ops.value(quarters, row), ops.value(months, row)
                self.problem(row, "quarter", f"is {q:g}, but month {m:g} is in quarter {quarter_of(int(m))}")

    def unseen_encodings(self, zipcode_freq: Column, city_encoded: Column, encoders: Encoders) -> None:
        """Pre-encoded values that are exactly what the encoders give an identifier never seen."""
        for row in self.ops.rows_equal(zipcode_freq, 0.0):
            self.warning(row, "zipcode_freq", "0 is the encoding of a zipcode not in the training data")
        mean = encoders.city.global_mean
        for row in self.ops.rows_equal(city_encoded, mean):
            self.warning(
                row,
                "city_encoded",
                f"{mean:g} is the mean training price: the encoding of an unseen city",
            )

    def extrapolation(
        self, features: list[Column], years: Column, months: Column, domain: TrainingDomain, encoded: bool
    ) -> None:
        """Warn where a value lies outside what the model was trained on; it is still scored."""
        ops = self.ops
        derived = () if encoded else ("zipcode_freq", "city_encoded")
        checked = [
            (name, column, domain.ranges[name])
            for name, column in zip(FEATURE_NAMES, features, strict=True)
            if name not in _CALENDAR_NAMES and name not in derived and name in domain.ranges
        ]
        limits = [(low, high, False) for _, _, (low, high) in checked]
        for index, row in ops.cells_invalid([column for _, column, _ in checked], limits):
            name, column, (low, high) = checked[index]
            self.warning(
                row,
                name,
                f"{ops.value(column, row):g} is outside the training range [{low:g}, {high:g}]: the model extrapolates",
            )
        if domain.period is None:
            return
        first, last = domain.period
        dated = self.columns.texts.get("date") or [None] * self.n
        year_months = ops.year_months(years, months)
        by_month: dict[tuple[str, int], list[int]] = {}  # a block holds a few dozen months
        for row in ops.rows_outside(year_months, first, last):
            key = ("date" if dated[row] is not None else "year", int(ops.value(year_months, row)))
            by_month.setdefault(key, []).append(row)
        for (name, when), rows in by_month.items():
            message = (
                f"{_month_text(when)} is outside the training period {_month_text(first)} to "
                f"{_month_text(last)}: the model extrapolates in time"
            )
            self.warn_rows(rows, name, message)

    def result(self, features: list[Column]) -> Checked:
        flagged = {(p.record, p.field) for p in self.problems}
        warnings = (
            sorted(w for w in self.warnings if (w.record, w.field) not in flagged) if flagged else sorted(self.warnings)
        )
        bad = {p.record for p in self.problems}
        rows = [row for row in range(self.n) if row not in bad]
        return Checked(rows, self.ops.matrix(features, rows), sorted(self.problems), warnings)


def _location_message(city: Any, known: bool, key: str | None) -> tuple[bool, str]:
    """Whether an absent lat/lng was looked up (a warning) or could not be (a problem), and what to say."""
    if known:
        return True, f"not given; taken from city_full {city!r}"
    if key is not None:
        return False, f"missing, and city_full {city!r} is not a known city to look it up from"
    return False, "missing, and there is no city_full to look it up from"


def _month_text(year_month: int) -> str:
    return f"{year_month // 12:04d}-{year_month % 12 + 1:02d}"


def _zipcode(value: Any) -> tuple[str | None, str | None]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, _MISSING_IDENTIFIER if value is None else "missing"
    try:
        return normalize_zipcode(value), None
    except ValueError as exc:
        return None, str(exc)


def _city(value: Any) -> tuple[str | None, str | None]:
    if value is None:
        return None, "missing"
    if not isinstance(value, str):
        return None, f"must be a non-empty string, got {json_type(value)}"
    key = normalize_city(value)
    return (key, None) if key else (None, "missing")


def _date(value: Any) -> tuple[tuple[float, float] | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, str):
        if not value.strip():
            return None, "missing"
        try:
            year, month = parse_date(value)
            return (float(year), float(month)), None
        except ValueError:
            pass
    shown = repr(value[:40]) if isinstance(value, str) else json_type(value)
    return None, f"must be an ISO date like 2021-07-01, got {shown}"
