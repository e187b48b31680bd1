"""Training data: the real HouseTS panel or a synthetic one of the same schema, cleaned and split.

HouseTS (Kaggle) is a monthly zipcode panel, 2012-03 to 2023-12; its lat/lng come from a
separate US-metros CSV (city, lat, lng) joined on the normalized city name. The synthetic
generator writes the same two files, so both take the same path through `load_housets`.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from chalicelib.columns_numpy import NumpyOps
from chalicelib.contract import AMENITIES, CENSUS, FEATURE_NAMES, PASSTHROUGH, TARGET, normalize_city, parse_date
from chalicelib.encoders import Encoders
from chalicelib.pipeline import Columns, TrainingDomain, check

RAW_COLUMNS = (
    "date",
    "median_sale_price",
    "median_list_price",
    "median_ppsf",
    "median_list_ppsf",
    "homes_sold",
    "pending_sales",
    "new_listings",
    "inventory",
    "median_dom",
    "avg_sale_to_list",
    "sold_above_list",
    "off_market_in_two_weeks",
    "city",
    "zipcode",
    "year",
    "bank",
    "bus",
    "hospital",
    "mall",
    "park",
    "restaurant",
    "school",
    "station",
    "supermarket",
    "Total Population",
    "Median Age",
    "Per Capita Income",
    "Total Families Below Poverty",
    "Total Housing Units",
    "Median Rent",
    "Median Home Value",
    "Total Labor Force",
    "Unemployed Population",
    "Total School Age Population",
    "Total School Enrollment",
    "Median Commute Time",
    "price",
    "city_full",
)

# Prices outside this band are data errors, not houses: the HouseTS zipcode medians lie
# well inside it, and a zero or a nine-figure median would dominate an L2 objective.
MIN_PRICE = 10_000.0
MAX_PRICE = 20_000_000.0
EVAL_START = "2020-01-01"
HOLDOUT_START = "2022-01-01"


@dataclass(frozen=True)
class Splits:
    train: pd.DataFrame
    eval: pd.DataFrame
    holdout: pd.DataFrame
    dropped: dict[str, int]


def load_housets(houses_csv: Path, metros_csv: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Read, clean and locate the panel; also say how many rows each rule dropped."""
    frame = pd.read_csv(houses_csv, dtype={"zipcode": str, "city": str, "city_full": str})
    missing = [c for c in RAW_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{houses_csv} lacks the HouseTS columns {missing}")
    dropped: dict[str, int] = {}
    before = len(frame)
    frame = frame.drop_duplicates(ignore_index=True)
    dropped["exact duplicate rows"] = before - len(frame)
    price = pd.to_numeric(frame[TARGET], errors="coerce")
    plausible = price.between(MIN_PRICE, MAX_PRICE)
    dropped[f"price missing or outside [{MIN_PRICE:,.0f}, {MAX_PRICE:,.0f}]"] = int((~plausible).sum())
    frame = frame[plausible].reset_index(drop=True)

    frame["city_key"] = frame["city"].astype(str).map(normalize_city)
    metros = pd.read_csv(metros_csv, usecols=["city", "lat", "lng"])
    metros["city_key"] = metros["city"].astype(str).map(normalize_city)
    metros = metros.drop_duplicates("city_key").drop(columns="city")
    frame = frame.merge(metros, on="city_key", how="left").drop(columns="city_key")
    located = frame["lat"].notna() & frame["lng"].notna()
    dropped["city not in the metros file (no lat/lng)"] = int((~located).sum())
    frame = frame[located].reset_index(drop=True)

    calendar = {d: parse_date(d) for d in frame["date"].unique()}
    frame["year"] = frame["date"].map(lambda d: calendar[d][0]).astype(np.int64)
    frame["month"] = frame["date"].map(lambda d: calendar[d][1]).astype(np.int64)
    return frame, dropped


def split_by_date(frame: pd.DataFrame, dropped: dict[str, int]) -> Splits:
    """Train before 2020, evaluate on 2020-2021, hold out 2022 on: no look into the future."""
    when = pd.to_datetime(frame["date"])
    return Splits(
        frame[when < EVAL_START].reset_index(drop=True),
        frame[(when >= EVAL_START) & (when < HOLDOUT_START)].reset_index(drop=True),
        frame[when >= HOLDOUT_START].reset_index(drop=True),
        dropped,
    )


def features_of(frame: pd.DataFrame, encoders: Encoders) -> np.ndarray:
    """The model matrix of cleaned raw rows, through the service's own pipeline: features can
    never be derived differently in training and serving."""
    n = len(frame)
    given = ("year", "month", *(f.name for f in PASSTHROUGH))
    numbers = {
        name: frame[name].to_numpy(np.float64) if name in given else np.full(n, np.nan) for name in FEATURE_NAMES
    }
    absent = {name: [] if name in given else list(range(n)) for name in FEATURE_NAMES}
    texts = {"zipcode": frame["zipcode"].tolist(), "city_full": frame["city_full"].astype(str).tolist()}
    checked = check(Columns(n, False, numbers, absent, texts), encoders, TrainingDomain({}, None), NumpyOps())
    if checked.problems:
        raise ValueError(f"{len(checked.problems)} problems in cleaned training rows, e.g. {checked.problems[:3]}")
    return checked.matrix


def load_splits(data: Path | None, metros: Path | None, zipcodes: int) -> tuple[Splits, str]:
    """The splits of the given HouseTS files, or of the synthetic panel; also say which, for the card."""
    if data and metros:
        houses, source = data, f"HouseTS file {data.name} with metros file {metros.name}"
    else:
        houses, metros = generate_synthetic(Path("data/synthetic") / f"zipcodes-{zipcodes}", zipcodes)
        source = f"synthetic: training.data.generate_synthetic, {zipcodes} zipcodes, seed 7"
        print(f"synthetic data: {houses}")
    frame, dropped = load_housets(houses, metros)
    splits = split_by_date(frame, dropped)
    for rule, count in dropped.items():
        print(f"dropped {count:>7,} rows: {rule}")
    print(f"rows: train {len(splits.train):,}, eval {len(splits.eval):,}, holdout {len(splits.holdout):,}")
    return splits, source


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of the rows a model was trained on, independent of file layout."""
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashes.tobytes()).hexdigest()


_WORDS = ("Ash", "Bay", "Cedar", "Elm", "Fair", "Glen", "Lake", "Maple", "Oak", "Pine", "River", "Stone")
_ENDS = ("field", "ford", "haven", "mont", "port", "ton", "view", "wood")
_STATES = ("AZ", "CA", "CO", "FL", "GA", "IL", "MA", "NC", "NY", "OH", "TX", "WA")


def generate_synthetic(
    out_dir: Path, zipcodes: int = 300, metros: int = 30, seed: int = 7, draw: int = 0
) -> tuple[Path, Path]:
    """Write a synthetic HouseTS panel and its metros file; the same arguments give the same bytes.

    Prices depend on metro, zipcode, a metro-specific trend with a 2020-2022 boom,
    income with diminishing returns, school supply that saturates, an age-by-rent
    interaction and noise; market columns are noisy views of the price. A linear model
    sees only part of that, which is the point.

    `seed` makes the market: metros, zipcodes and their traits. `draw` 0 is the panel
    training uses; any other number draws every monthly value again (price noise, market
    columns, counts) for the same market: a fresh sample on which a model and its
    intervals can be checked without having seen a single one of its rows.
    """
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [f"{w}{e}" for w in _WORDS for e in _ENDS]
    picked = rng.choice(len(names), size=metros, replace=False)
    metro_names = [names[i] for i in picked]
    metro_full = [f"{n}, {_STATES[i % len(_STATES)]}" for i, n in enumerate(metro_names)]
    metro_lat = rng.uniform(26, 48, metros).round(4)
    metro_lng = rng.uniform(-122, -71, metros).round(4)
    metro_level = rng.lognormal(np.log(280_000), 0.45, metros)
    metro_growth = rng.uniform(0.005, 0.025, metros)
    metro_boom = rng.uniform(0.0, 0.12, metros)
    metro_income_weight = rng.uniform(0.2, 1.0, metros)
    pd.DataFrame({"city": metro_names, "lat": metro_lat, "lng": metro_lng}).to_csv(out_dir / "metros.csv", index=False)

    metro_of = np.sort(rng.integers(0, metros, zipcodes))
    zip_codes = np.sort(rng.choice(np.arange(1_000, 99_950), size=zipcodes, replace=False))
    population = rng.lognormal(np.log(25_000), 0.7, zipcodes).round()
    income = rng.lognormal(np.log(38_000), 0.4, zipcodes).round()
    age = rng.normal(38, 6, zipcodes).clip(22, 70).round(1)
    rent = (income / 30 * rng.lognormal(0, 0.15, zipcodes)).round()
    schools = rng.poisson(population / 1_500)
    sqft = rng.uniform(1_200, 2_600, zipcodes)
    zip_effect = rng.lognormal(0, 0.25, zipcodes)
    no_census = rng.random(zipcodes) < 0.03
    market = _Market(
        np.asarray(metro_names),
        np.asarray(metro_full),
        metro_level,
        metro_growth,
        metro_boom,
        metro_income_weight,
        metro_of,
        zip_codes,
        population,
        income,
        age,
        rent,
        schools,
        sqft,
        zip_effect,
        no_census,
    )
    # The training panel draws the market's last traits (amenity levels, unemployment) from
    # the same stream, after its monthly values: a fresh draw must replay that to get them.
    frame = _panel(market, rng, seed)
    if draw:
        frame = _panel(market, np.random.default_rng([seed, draw]), seed + draw)
    houses = out_dir / "houses.csv"
    frame[list(RAW_COLUMNS)].to_csv(houses, index=False)
    return houses, out_dir / "metros.csv"


@dataclass
class _Market:
    """What `seed` fixes: metros and zipcodes with their traits; `_panel` adds the rest once."""

    metro_names: np.ndarray
    metro_full: np.ndarray
    metro_level: np.ndarray
    metro_growth: np.ndarray
    metro_boom: np.ndarray
    metro_income_weight: np.ndarray
    metro_of: np.ndarray
    zip_codes: np.ndarray
    population: np.ndarray
    income: np.ndarray
    age: np.ndarray
    rent: np.ndarray
    schools: np.ndarray
    sqft: np.ndarray
    zip_effect: np.ndarray
    no_census: np.ndarray
    amenity_scale: dict[str, np.ndarray] | None = None
    unemployed_share: np.ndarray | None = None


def _panel(market: _Market, rng: np.random.Generator, seed: int) -> pd.DataFrame:
    """The monthly rows of every zipcode, 2012-03 to 2023-12, drawn from `rng`."""
    zipcodes = len(market.zip_codes)
    months = pd.date_range("2012-03-01", "2023-12-01", freq="MS")
    t = (months.year - 2012 + (months.month - 1) / 12).to_numpy()
    boom = np.clip((t - 8.0) / 2.5, 0, 1) - 0.4 * np.clip((t - 10.5) / 1.5, 0, 1)
    season = 1 + 0.02 * np.sin(2 * np.pi * (months.month.to_numpy() - 4) / 12)

    z = np.repeat(np.arange(zipcodes), len(months))
    m = market.metro_of[z]
    k = np.tile(np.arange(len(months)), zipcodes)
    n = len(z)
    population, income, age, rent, schools = market.population, market.income, market.age, market.rent, market.schools
    income_effect = 1 + 0.6 * market.metro_income_weight[m] * np.tanh((income[z] - 38_000) / 10_000)
    school_effect = 1 + 0.4 * (1 - np.exp(-schools[z] / 8))
    age_rent = 1 + 0.3 * np.tanh((age[z] - 40) / 6) * np.tanh((rent[z] - 1_200) / 300)
    trend = np.exp(market.metro_growth[m] * t[k]) * (1 + market.metro_boom[m] * boom[k]) * season[k]
    price = (
        market.metro_level[m]
        * market.zip_effect[z]
        * income_effect
        * school_effect
        * age_rent
        * trend
        * rng.lognormal(0, 0.04, n)
    )
    heat = np.tanh(np.gradient(np.log(trend.reshape(zipcodes, -1)), axis=1).ravel() * 40)
    sold = rng.poisson(np.maximum(population[z] / 400 * season[k], 1)).astype(float)
    sqft = market.sqft

    frame = pd.DataFrame(
        {
            "date": months.strftime("%Y-%m-%d")[k],
            "median_sale_price": (price * rng.lognormal(0, 0.03, n)).round(2),
            "median_list_price": (price * rng.lognormal(0.02, 0.2, n)).round(-2),
            "median_ppsf": price / sqft[z] * rng.lognormal(0, 0.05, n),
            "median_list_ppsf": price / sqft[z] * rng.lognormal(0.02, 0.08, n),
            "homes_sold": sold,
            "pending_sales": rng.poisson(sold * (1 + 0.2 * heat)).astype(float),
            "new_listings": rng.poisson(sold * 1.1).astype(float),
            "inventory": rng.poisson(sold * (2.5 - 1.5 * heat.clip(0, 1)) + 1).astype(float),
            "median_dom": (45 - 30 * heat + rng.normal(0, 8, n)).clip(3, 365).round(1),
            "avg_sale_to_list": (0.98 + 0.04 * heat + rng.normal(0, 0.01, n)).round(6),
            "sold_above_list": (0.3 + 0.3 * heat + rng.normal(0, 0.08, n)).clip(0, 1).round(6),
            "off_market_in_two_weeks": (0.35 + 0.35 * heat + rng.normal(0, 0.1, n)).clip(0, 1).round(6),
            "city": market.metro_names[m],
            "zipcode": market.zip_codes[z],
            "year": months.year.to_numpy()[k],
        }
    )
    first = market.amenity_scale is None
    if first:
        market.amenity_scale = {}
    for spec in AMENITIES:
        if first:
            scale = schools if spec.name == "school" else rng.poisson(population / 4_000) + 0.5
            market.amenity_scale[spec.name] = scale
        frame[spec.name] = rng.poisson(market.amenity_scale[spec.name][z] * 1.0).astype(float)
    if market.unemployed_share is None:
        market.unemployed_share = rng.uniform(0.02, 0.08, zipcodes)
    census = {
        "Total Population": population,
        "Median Age": age,
        "Per Capita Income": income,
        "Total Families Below Poverty": (population * 0.98).round(),
        "Total Housing Units": (population / 2.4).round(),
        "Median Rent": rent,
        "Median Home Value": (market.metro_level[market.metro_of] * market.zip_effect * 0.8).round(-2),
        "Total Labor Force": (population * 0.5).round(),
        "Unemployed Population": (population * market.unemployed_share).round(),
        "Total School Age Population": (population * 0.95).round(),
        "Total School Enrollment": (population * 0.95).round(),
        "Median Commute Time": (population * 0.45).round(),
    }
    for spec in CENSUS:
        frame[spec.name] = np.where(market.no_census, 0.0, census[spec.name])[z]
    frame[TARGET] = price
    frame["city_full"] = market.metro_full[m]

    # A little dirt, so the cleaning rules have something to do.
    frame.loc[rng.choice(n, size=max(n // 2_000, 1), replace=False), TARGET] = 0.0
    return pd.concat([frame, frame.sample(n=max(n // 1_000, 1), random_state=seed)], ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic HouseTS-like panel.")
    parser.add_argument("--out", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--zipcodes", type=int, default=300, help="6226 gives the real data's size")
    parser.add_argument("--seed", type=int, default=7, help="the market: metros, zipcodes, their traits")
    parser.add_argument("--draw", type=int, default=0, help="another number: fresh monthly values, same market")
    args = parser.parse_args()
    houses, metros = generate_synthetic(args.out, args.zipcodes, seed=args.seed, draw=args.draw)
    print(f"wrote {houses} and {metros}")


if __name__ == "__main__":
    main()
