"""The feature contract: the one list of the model's inputs, their order, types and bounds.

Training, request validation, batch scoring and the OpenAPI document all read this
module. The feature order is the order of the widely used lab request
(`shared/fixtures/lab_sample_records.jsonl`), so pre-encoded requests keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

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
RAW_KEYS = ("date", "zipcode", "city_full")
# Columns of the raw HouseTS panel that the model never sees: identifiers, and
# median_sale_price, which is the target under another name.
DROPPED = ("date", "city", "city_full", "zipcode", "median_sale_price", TARGET)


def quarter_of(month: int) -> int:
    return (month - 1) // 3 + 1


def parse_date(text: str) -> tuple[int, int]:
    """Year and month of an ISO date (`2021-07-01`) or month (`2021-07`)."""
    parts = text.strip().split("-")
    if len(parts) == 2:
        parts.append("01")
    day = date.fromisoformat("-".join(parts)) if len(parts) == 3 else None
    if day is None:
        raise ValueError(f"not an ISO date: {text!r}")
    return day.year, day.month


def normalize_city(name: str) -> str:
    """Case- and whitespace-insensitive city key, so 'Los  Angeles ' matches 'los angeles'."""
    return " ".join(name.casefold().split())


def normalize_zipcode(value: object) -> str:
    """Five-digit zipcode text; the HouseTS CSV stores zipcodes as integers (2134 is '02134')."""
    if isinstance(value, bool):
        raise ValueError("a zipcode is 5 digits, not a boolean")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if not text.isdigit() or len(text) > 5:
        raise ValueError(f"a zipcode is up to 5 digits, got {text[:20]!r}")
    return text.zfill(5)
