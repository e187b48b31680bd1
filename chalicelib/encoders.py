"""Encoders that turn raw identifiers into model features.

Each follows the estimator contract: `fit` learns from training rows only, and `to_dict`/
`from_dict` is the whole persisted state (plain JSON); `transform` is pure. `chalicelib.pipeline`
says when an identifier was never seen. Plain Python, no numpy: the API function imports this.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Self

from chalicelib.columns import NAN, map_distinct
from chalicelib.contract import normalize_city, normalize_zipcode


class ZipcodeFrequencyEncoder:
    """Number of training rows of a zipcode; an unseen zipcode has had 0."""

    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self.counts = counts or {}

    def fit(self, zipcodes: Iterable[object]) -> Self:
        self.counts = dict(Counter(normalize_zipcode(z) for z in zipcodes))
        return self

    def transform(self, zipcodes: Sequence[object]) -> list[float]:
        """Training rows of each zipcode (0 for one never seen); NaN for None (no zipcode)."""
        return map_distinct(zipcodes, lambda z: NAN if z is None else float(self.counts.get(normalize_zipcode(z), 0)))

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Self:
        return cls({normalize_zipcode(str(k)): int(v) for k, v in state["counts"].items()})


class CityTargetEncoder:
    """Mean training price of a city, shrunk toward the global mean.

    The shrinkage (`smoothing` pseudo-rows of the global mean) keeps a city seen in a
    handful of rows from getting its own noisy mean; cities with thousands of rows are
    barely moved. An unseen city gets the global mean.
    """

    def __init__(
        self, means: dict[str, float] | None = None, global_mean: float = 0.0, smoothing: float = 20.0
    ) -> None:
        self.means = means or {}
        self.global_mean = global_mean
        self.smoothing = smoothing

    def fit(self, cities: Sequence[str], prices: Sequence[float]) -> Self:
        keys = [normalize_city(c) for c in cities]
        values = [float(p) for p in prices]
        self.global_mean = math.fsum(values) / len(values)
        sums: dict[str, list[float]] = {}
        for key, price in zip(keys, values, strict=True):
            sums.setdefault(key, []).append(price)
        m = self.smoothing
        self.means = {k: (math.fsum(v) + m * self.global_mean) / (len(v) + m) for k, v in sums.items()}
        return self

    def transform(self, cities: Sequence[str | None]) -> list[float]:
        """Each city's shrunk mean (the global mean for one never seen); NaN for None (no city)."""
        return map_distinct(cities, lambda c: NAN if c is None else self.means.get(normalize_city(c), self.global_mean))

    def to_dict(self) -> dict[str, Any]:
        return {"means": self.means, "global_mean": self.global_mean, "smoothing": self.smoothing}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Self:
        # Keys are normalized again on load: a version written before the city key learned to
        # ignore commas and invisible characters keeps matching every spelling of its cities.
        return cls(
            {normalize_city(str(k)): float(v) for k, v in state["means"].items()},
            float(state["global_mean"]),
            float(state["smoothing"]),
        )


class CityLocations:
    """Latitude and longitude of each training city, so raw records may omit them."""

    def __init__(self, locations: dict[str, tuple[float, float]] | None = None) -> None:
        self.locations = locations or {}

    def fit(self, cities: Sequence[str], lats: Sequence[float], lngs: Sequence[float]) -> Self:
        self.locations = {}
        for city, lat, lng in zip(cities, lats, lngs, strict=True):
            self.locations.setdefault(normalize_city(city), (float(lat), float(lng)))
        return self

    def lookup(self, city: str) -> tuple[float, float] | None:
        return self.locations.get(normalize_city(city))

    def to_dict(self) -> dict[str, Any]:
        return {"locations": {k: list(v) for k, v in self.locations.items()}}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Self:
        return cls({normalize_city(str(k)): (float(v[0]), float(v[1])) for k, v in state["locations"].items()})


class Encoders:
    """The fitted encoders of one model version, persisted together as `encoders.json`."""

    def __init__(
        self,
        zipcode: ZipcodeFrequencyEncoder,
        city: CityTargetEncoder,
        locations: CityLocations,
    ) -> None:
        self.zipcode = zipcode
        self.city = city
        self.locations = locations

    @classmethod
    def fit(
        cls,
        zipcodes: Sequence[object],
        cities: Sequence[str],
        prices: Sequence[float],
        lats: Sequence[float],
        lngs: Sequence[float],
    ) -> Self:
        return cls(
            ZipcodeFrequencyEncoder().fit(zipcodes),
            CityTargetEncoder().fit(cities, prices),
            CityLocations().fit(cities, lats, lngs),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "zipcode_freq": self.zipcode.to_dict(),
            "city_encoded": self.city.to_dict(),
            "city_locations": self.locations.to_dict(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Self:
        return cls(
            ZipcodeFrequencyEncoder.from_dict(state["zipcode_freq"]),
            CityTargetEncoder.from_dict(state["city_encoded"]),
            CityLocations.from_dict(state["city_locations"]),
        )
