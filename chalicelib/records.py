"""JSON request bodies into `pipeline.Columns`: the API's input adapter.

What is particular to JSON lives here: parsing (duplicate keys, NaN literals, numbers Python
cannot hold), records that are not objects, unknown fields, `null`, strings where numbers
belong, and `price` echoed back as `actuals`. Everything else is `chalicelib.pipeline`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.columns import NAN
from chalicelib.contract import FEATURE_NAMES, IDENTIFIERS, KNOWN_FIELDS, TARGET, is_pre_encoded, json_type
from chalicelib.pipeline import Columns, Problem

_EXACT = 2**53  # ints beyond this are not exact as floats; huge ones overflow: both take the careful way


class BodyError(ValueError):
    """A body that is not JSON the service can read; the message says why, for a 400."""


class NonFinite(float):
    """A NaN/Infinity literal from a JSON body, kept so the check can name its field."""

    literal: str

    def __new__(cls, literal: str) -> NonFinite:
        value = super().__new__(cls, literal.replace("Infinity", "inf"))
        value.literal = literal
        return value


def parse_body(raw: bytes) -> Any:
    """The JSON value of a body, or BodyError naming what cannot be read."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("body is not UTF-8 text") from None
    try:
        return json.loads(text, parse_constant=NonFinite, object_pairs_hook=_object)
    except _DuplicateKey as exc:
        raise BodyError(f"key {exc.key[:100]!r} appears more than once in one object") from None
    except json.JSONDecodeError as exc:
        raise BodyError(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:
        # Integers of more than 4,300 digits: Python refuses to convert them (a DoS guard).
        raise BodyError(f"malformed JSON: a number cannot be read ({exc})") from None
    except RecursionError:
        # `[[[[...` a few thousand deep fits in the size limit and exhausts the decoder's stack.
        raise BodyError("malformed JSON: nested too deeply") from None


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a key given twice would otherwise silently keep its last value."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))  # type: ignore[func-returns-value]
    return result


@dataclass
class Groups:
    """A request's records split by kind, as columns, with what the split found on the way."""

    groups: list[tuple[list[int], Columns]]  # record indices of each group, and its columns
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    actuals: list[float] | None = None


def to_columns(records: Sequence[Any]) -> Groups:
    """Group records by kind (pre-encoded: has zipcode_freq or city_encoded) and turn each group into columns."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    actuals: list[float] = []
    kinds: dict[bool, list[int]] = {True: [], False: []}
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            problems.append(Problem.of(index, "", f"a record must be a JSON object, got {json_type(record)}"))
            continue
        kinds[is_pre_encoded(record)].append(index)
        warnings.extend(Problem.of(index, k[:100], "unknown field, ignored") for k in record if k not in KNOWN_FIELDS)
        if TARGET in record:
            price, reason = _number(record[TARGET])
            if reason is None and math.isinf(price):
                reason = f"must be a finite number, got {price}"  # 1e400 reads as inf, which JSON cannot say
            elif reason is None and price < 0:
                reason = f"must not be negative, got {price:g}"
            if reason or math.isnan(price):
                problems.append(Problem.of(index, TARGET, reason or "missing"))
            actuals.append(price)
    groups = [
        (indices, _columns([records[i] for i in indices], encoded)) for encoded, indices in kinds.items() if indices
    ]
    return Groups(groups, problems, warnings, actuals if len(actuals) == len(records) else None)


def _columns(records: list[dict[str, Any]], encoded: bool) -> Columns:
    numbers: dict[str, list[float]] = {}
    absent: dict[str, list[int]] = {}
    unreadable: list[Problem] = []
    for name in FEATURE_NAMES:
        column: list[float] = []
        missing: list[int] = []
        for row, record in enumerate(records):
            value = record.get(name)  # None: absent, or null
            # The common cases first. NonFinite (a float subclass) and bool (an int subclass)
            # are other types, so they take the careful way.
            if type(value) is float:
                column.append(value)
            elif type(value) is int and -_EXACT < value < _EXACT:
                column.append(float(value))
            else:
                number, reason = _number(value)
                column.append(number)
                if value is None:
                    missing.append(row)
                elif reason:
                    unreadable.append(Problem.of(row, name, reason))
        numbers[name], absent[name] = column, missing
    texts = {name: [r.get(name) for r in records] for name in IDENTIFIERS}
    return Columns(len(records), encoded, numbers, absent, texts, unreadable)


def _number(value: Any) -> tuple[float, str | None]:
    """A JSON value as a float, or NaN and why it is not a finite number. Bounds come later."""
    if isinstance(value, NonFinite):
        return NAN, f"must be a finite number, got {value.literal}"
    if value is None:
        return NAN, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = f"the string {value[:40]!r}" if isinstance(value, str) else json_type(value)
        return NAN, f"must be a number, got {shown}"
    try:
        return float(value), None
    except OverflowError:
        return NAN, "must be a finite number, got one too large to represent"
