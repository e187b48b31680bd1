"""The model card of one version (`model_card.md`), generated from its manifest alone.

Everything it states comes from the manifest, so the card cannot disagree with the version
it describes; what the manifest does not record, the card says is not recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chalicelib.artifacts import sha256
from training.intervals import observed_coverage

NOT_RECORDED = "not recorded"


def render_card(manifest: dict[str, Any]) -> str:
    data = manifest["training_data"]
    params = manifest["params"]
    period = data.get("period", {})
    source = str(data.get("source", NOT_RECORDED))
    synthetic = source.startswith("synthetic")
    train_period = period.get("train") or [NOT_RECORDED, NOT_RECORDED]
    holdout_period = period.get("holdout") or [NOT_RECORDED, NOT_RECORDED]
    schema = manifest["input_schema"]["pre_encoded"]["fields"]
    lat, lng = schema["lat"]["training_range"], schema["lng"]["training_range"]

    lines = [
        f"# Model card: house-prices {manifest['version']}",
        "",
        f"LightGBM regression of the monthly median sale price of a US zipcode. Created {manifest['created_at']}.",
        "",
        "## Intended use",
        "",
        "- Estimating the median sale price of homes in a zipcode and month, from that month's market",
        "  figures (listings, days on market, sale-to-list ratios), amenity counts and census data, as the",
        "  HouseTS panel records them; through `POST /predict_price` or batch CSV scoring.",
        "- A price level for comparison and triage. Not a valuation of a single property, not a basis for",
        "  lending, insurance or any decision about a person, and not a forecast of future months: its",
        "  inputs are that month's own market figures.",
        "",
        "## Data",
        "",
        f"- Source: {source}.",
        f"- Fingerprint of the training rows (sha256): `{data['fingerprint']}`.",
        "- Splits by date, never shuffled: train before 2020, eval 2020-2021 (early stopping"
        + (", parameter tuning" if manifest.get("tuned") else "")
        + "), holdout from 2022 (reported only).",
        "",
        "| split | rows | first month | last month |",
        "| --- | ---: | --- | --- |",
    ]
    for split, rows in data["rows"].items():
        first, last = period.get(split) or [NOT_RECORDED, NOT_RECORDED]
        lines.append(f"| {split} | {rows:,} | {first} | {last} |")
    lines += ["", "Rows dropped by cleaning, by rule:", "", "| rule | rows |", "| --- | ---: |"]
    lines += [f"| {rule} | {count:,} |" for rule, count in data["dropped"].items()]
    lines += [
        "",
        "## Metrics",
        "",
        "LightGBM against a median and a linear baseline (MAE and RMSE in dollars, MAPE in %).",
        "",
        "| split | model | MAE | RMSE | R2 | MAPE % |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for split, models in manifest["metrics"].items():
        for model, m in models.items():
            lines.append(
                f"| {split} | {model} | {m['MAE']:,.0f} | {m['RMSE']:,.0f} | {m['R2']:.4f} | {m['MAPE']:.2f} |"
            )
    check, observed = observed_coverage(manifest.get("intervals") or {})
    if observed:
        coverage = ", ".join(f"{level:.0%}: {value:.1%}" for level, value in observed.items())
        lines += ["", f"Prediction interval coverage (nominal: observed, on {check}): {coverage}."]
    lines += [
        "",
        "## Limits",
        "",
        f"- Time: trained on {train_period[0]} to {train_period[1]}; the holdout reaches {holdout_period[1]}. "
        "Later months are extrapolation: trees predict no trend beyond the last one they saw, so errors grow "
        "with the distance from the training period (see the report's residuals by month).",
        f"- Place: zipcodes and cities absent from training get the encoders' fallbacks (global frequency and "
        f"mean price). Training locations span latitude {lat[0]:g} to {lat[1]:g} and longitude {lng[0]:g} to "
        f"{lng[1]:g}; elsewhere the model extrapolates. Inputs outside the contract's bounds are rejected, "
        "inputs inside them but outside the training range (`input_schema` in the manifest) are not.",
        "- Data: "
        + (
            "these metrics come from a synthetic panel made by `training.data.generate_synthetic`. They show that "
            "the pipeline works and how the model behaves on data of that shape, not how it performs on the real "
            "housing market; retrain on the real HouseTS data before relying on it."
            if synthetic
            else "metrics describe the data named above; a market that changes (rates, a crash) makes them stale."
        ),
        "- Zipcode medians, not houses: a single home can differ from its zipcode's median by far more than "
        "the error above.",
        "",
        "## Versions",
        "",
        f"- Model version: `{manifest['version']}`; features: {len(manifest['features'])} "
        "(order in the manifest, `chalicelib/contract.py`).",
        f"- LightGBM {manifest['lightgbm_version']}; {params.get('best_iteration', NOT_RECORDED)} trees of at most "
        f"{params.get('num_leaves', NOT_RECORDED)} leaves; learning rate {params.get('learning_rate', NOT_RECORDED)}.",
        "- Parameters: "
        + (
            f"tuned on eval by `training.tune`: {', '.join(manifest['tuned'])}; the rest fixed."
            if manifest.get("tuned")
            else "the fixed set in `training/train.py`."
        ),
    ]
    toolchain = manifest.get("toolchain")
    lines.append(
        "- Trained with " + ", ".join(f"{k} {v}" for k, v in toolchain.items()) + "."
        if toolchain
        else f"- Training toolchain: {NOT_RECORDED}."
    )
    lines.append("- Files and their sha256: `manifest.json` (`files`); the report: `report.html` next to this card.")
    return "\n".join(lines) + "\n"


def write_card(path: Path, manifest: dict[str, Any]) -> str:
    """Write the card; return its sha256 for the manifest."""
    text = render_card(manifest)
    path.write_text(text)
    return sha256(text.encode())
