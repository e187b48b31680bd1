"""Encoders that turn raw identifiers into model features.

Each follows the estimator contract: `fit` learns from training rows only, `transform`
is pure, and `to_dict`/`from_dict` is the whole persisted state (plain JSON).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Self

import numpy as np

from chalicelib.contract import normalize_city, normalize_zipcode


class ZipcodeFrequencyEncoder:
    """Number of training rows of a zipcode; an unseen zipcode has had 0."""

    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self.counts = counts or {}

    def fit(self, zipcodes: Iterable[object]) -> Self:
        self.counts = dict(Counter(normalize_zipcode(z) for z in zipcodes))
        return self

    def encode(self, zipcode: object) -> float:
        return float(self.counts.get(normalize_zipcode(zipcode), 0))

    def transform(self, zipcodes: Sequence[object]) -> np.ndarray:
        """Each distinct zipcode is normalized once: a batch repeats a few thousand of them."""
        seen: dict[tuple[type, object], float] = {}

        def encode(z: object) -> float:
            key = (type(z), z)  # the type too: True == 1, but only 1 is a zipcode
            if key not in seen:
                seen[key] = self.encode(z)
            return seen[key]

        return np.fromiter((encode(z) for z in zipcodes), dtype=np.float64, count=len(zipcodes))

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Self:
        return cls({str(k): int(v) for k, v in state["counts"].items()})


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
        values = np.asarray(prices, dtype=np.float64)
        self.global_mean = float(values.mean())
        sums: dict[str, float] = {}
        counts: Counter[str] = Counter(keys)
        for key, price in zip(keys, values.tolist(), strict=True):
            sums[key] = sums.get(key, 0.0) + price
        m = self.smoothing
        self.means = {k: (sums[k] + m * self.global_mean) / (counts[k] + m) for k in counts}
        return self

    def encode(self, city: str) -> float:
        return self.means.get(normalize_city(city), self.global_mean)

    def transform(self, cities: Sequence[str]) -> np.ndarray:
        """Each distinct city is normalized once: a batch repeats a few hundred of them."""
        seen: dict[str, float] = {}

        def encode(c: str) -> float:
            if c not in seen:
                seen[c] = self.encode(c)
            return seen[c]

        return np.fromiter((encode(c) for c in cities), dtype=np.float64, count=len(cities))

    def to_dict(self) -> dict[str, Any]:
        return {"means": self.means, "global_mean": self.global_mean, "smoothing": self.smoothing}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Self:
        return cls(
            {str(k): float(v) for k, v in state["means"].items()},
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
        return cls({str(k): (float(v[0]), float(v[1])) for k, v in state["locations"].items()})


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
