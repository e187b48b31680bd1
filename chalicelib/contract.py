"""The feature contract: the one list of the model's inputs, their order, types and bounds.

Training, request validation, batch scoring and the OpenAPI document all read this
module. The feature order is the order of the widely used lab request
(`shared/fixtures/lab_sample_records.jsonl`), so pre-encoded requests keep working.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

TARGET = "price"


@dataclass(frozen=True)
class Field:
    """One numeric model input with the bounds outside which a value is not plausible."""

    name: str
    integer: bool
    low: float
    high: float

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        return f"{kind} in [{self.low:g}, {self.high:g}]"


def _numbers(names: str, low: float, high: float) -> tuple[Field, ...]:
    return tuple(Field(name, False, low, high) for name in names.split(","))


_MONEY = 1e9
_PEOPLE = 1e8

CALENDAR = (
    Field("year", True, 1990, 2100),
    Field("quarter", True, 1, 4),
    Field("month", True, 1, 12),
)
MARKET = (
    *_numbers("median_list_price", 0, _MONEY),
    *_numbers("median_ppsf,median_list_ppsf", 0, 1e6),
    *_numbers("homes_sold,pending_sales,new_listings,inventory", 0, 1e6),
    *_numbers("median_dom", 0, 3650),
    *_numbers("avg_sale_to_list", 0, 10),
    *_numbers("sold_above_list,off_market_in_two_weeks", 0, 1),
)
AMENITIES = _numbers("bank,bus,hospital,mall,park,restaurant,school,station,supermarket", 0, 1e6)
CENSUS = (
    *_numbers("Total Population", 0, _PEOPLE),
    *_numbers("Median Age", 0, 130),
    *_numbers("Per Capita Income", 0, _MONEY),
    *_numbers("Total Families Below Poverty,Total Housing Units", 0, _PEOPLE),
    *_numbers("Median Rent", 0, 1e6),
    *_numbers("Median Home Value", 0, _MONEY),
    *_numbers(
        "Total Labor Force,Unemployed Population,Total School Age Population,"
        "Total School Enrollment,Median Commute Time",
        0,
        _PEOPLE,
    ),
)
LOCATION = (Field("lat", False, -90, 90), Field("lng", False, -180, 180))
ENCODED = (
    Field("zipcode_freq", False, 0, 1e7),
    Field("city_encoded", False, 0, _MONEY),
)

# Every model input in model order.
FEATURES: tuple[Field, ...] = (*CALENDAR, *MARKET, *AMENITIES, *CENSUS, *LOCATION, *ENCODED)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)

# Numeric inputs a raw record carries as they are; the rest are derived.
PASSTHROUGH: tuple[Field, ...] = (*MARKET, *AMENITIES, *CENSUS, *LOCATION)

# Raw identifiers from which calendar and encoded features are derived.
IDENTIFIERS = ("zipcode", "city_full", "date")
# The features only a pre-encoded record carries: either one makes a record (or a CSV header) pre-encoded.
ENCODED_KEYS = ("zipcode_freq", "city_encoded")
# Columns of the raw HouseTS panel that the model never sees: identifiers, and
# median_sale_price, which is the target under another name.
DROPPED = ("date", "city", "city_full", "zipcode", "median_sale_price", TARGET)
# Every field a record may carry; anything else is unknown (ignored, with a warning).
KNOWN_FIELDS = frozenset((*FEATURE_NAMES, *IDENTIFIERS, *DROPPED))


def is_pre_encoded(fields: Container[str]) -> bool:
    """A record or CSV header with zipcode_freq or city_encoded is pre-encoded, and then needs all 39 features."""
    return any(key in fields for key in ENCODED_KEYS)  # a dict's `in` is a look-up, not a scan


def quarter_of(month: int) -> int:
    return (month - 1) // 3 + 1


def parse_date(text: str) -> tuple[int, int]:
    """Year and month of an ISO date (`2021-07-01`) or month (`2021-07`), ASCII digits only."""
    parts = text.strip().split("-")
    if len(parts) == 2:
        parts.append("01")
    if len(parts) != 3 or not text.isascii():
        raise ValueError(f"not an ISO date: {text[:40]!r}")
    day = date.fromisoformat("-".join(parts))
    return day.year, day.month


# Characters a person never typed on purpose: controls, and the invisible format characters
# (zero-width space and joiners, soft hyphen, byte-order mark) that copy and paste brings along.
_INVISIBLE_CATEGORIES = frozenset(("Cc", "Cf"))
_ASCII_CITY = str.maketrans({",": " ", **{chr(c): None for c in (*range(32), 127) if chr(c) not in "\t\n\r"}})


@lru_cache(maxsize=8192)
def normalize_city(name: str) -> str:
    """The key of a city name: every spelling a person would call the same city maps to one key.

    Case, runs of spaces, a comma before the state (`Ashfield, FL`, `Ashfield,FL`, `ASHFIELD FL`),
    Unicode compatibility forms (full-width letters, non-breaking spaces) and invisible
    characters do not matter. Cached: a batch repeats a few hundred names millions of times.
    """
    if not name.isascii():
        name = "".join(
            c for c in unicodedata.normalize("NFKC", name) if unicodedata.category(c) not in _INVISIBLE_CATEGORIES
        )
    return " ".join(name.translate(_ASCII_CITY).casefold().split())


_ZIPCODE = re.compile(r"([0-9]{1,5})|([0-9]{5})-[0-9]{4}", re.ASCII)


def normalize_zipcode(value: object) -> str:
    """Five ASCII digits. An integer of up to five digits gets its leading zeros back (HouseTS
    stores 2134 for 02134), ZIP+4 (`45202-1234`) is its first five; anything else is refused.

    Other digit scripts and superscripts are refused, not read as digits: `str.isdigit` would
    accept them, and a zipcode the model cannot have seen must not pass as one it has.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 99_999:
            return f"{value:05d}"
        raise ValueError(f"a zipcode is five digits, got {value}")
    if isinstance(value, float):
        raise ValueError(f"a zipcode is five digits, got the number {value!r}")
    if not isinstance(value, str):
        raise ValueError(f"a zipcode is five digits, got {json_type(value)}")
    match = _ZIPCODE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"a zipcode is five digits (or ZIP+4 like 45202-1234), got {value[:20]!r}")
    return (match[1] or match[2]).zfill(5)


def json_type(value: object) -> str:
    """How a JSON value's type is named in messages."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else type(value).__name__)
