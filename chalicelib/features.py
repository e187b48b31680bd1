"""Feature building from raw columns: the one implementation shared by training and serving."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from chalicelib.contract import FEATURE_NAMES, PASSTHROUGH, quarter_of
from chalicelib.encoders import Encoders

_PASSTHROUGH_COLUMNS = [FEATURE_NAMES.index(f.name) for f in PASSTHROUGH]
_YEAR, _QUARTER, _MONTH, _ZIP, _CITY = (
    FEATURE_NAMES.index(n) for n in ("year", "quarter", "month", "zipcode_freq", "city_encoded")
)


def build_features(
    years: np.ndarray,
    months: np.ndarray,
    zipcodes: Sequence[object],
    cities: Sequence[str],
    passthrough: np.ndarray,
    encoders: Encoders,
) -> np.ndarray:
    """The model matrix (rows x FEATURE_NAMES) of raw rows.

    `passthrough` holds the PASSTHROUGH columns in contract order; calendar and encoded
    features are derived here, so training and serving can never derive them differently.
    """
    n = len(years)
    matrix = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64)
    matrix[:, _PASSTHROUGH_COLUMNS] = passthrough
    months = np.asarray(months, dtype=np.int64)
    matrix[:, _YEAR] = years
    matrix[:, _MONTH] = months
    matrix[:, _QUARTER] = quarter_of(months)
    matrix[:, _ZIP] = encoders.zipcode.transform(zipcodes)
    matrix[:, _CITY] = encoders.city.transform(cities)
    return matrix
