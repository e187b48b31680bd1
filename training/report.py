"""The report of one model version: how the model behaves, for whoever decides to deploy it.

    python -m training.report                       # re-render for artifacts/LATEST (synthetic data)
    python -m training.report --data HouseTS.csv --metros us_metros.csv --version V

`report.html` is one self-contained page (every chart a PNG embedded as base64, no scripts,
nothing fetched) written next to the model and covered by the manifest's checksums. It is
rendered from the saved model file and the data, never from the training process, so
re-rendering a version gives the same page; the data must be the version's own (the
training fingerprint is checked). Charts use Matplotlib's object API, which renders through
Agg and never needs a display. Training tool only: nothing here runs in Lambda.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from chalicelib.artifacts import (
    CARD_FILE,
    ENCODERS_FILE,
    LATEST,
    MANIFEST_FILE,
    MODEL_FILE,
    REPORT_FILE,
    ArtifactError,
    load_artifacts,
    open_store,
    sha256,
)
from chalicelib.contract import FEATURE_NAMES, TARGET
from chalicelib.encoders import Encoders
from training.data import Splits, features_of, fingerprint, load_splits
from training.intervals import observed_coverage
from training.model_card import write_card

DPI = 80
SCATTER_POINTS = 4_000  # per panel: enough to see the shape, few enough to keep the PNG small
SHAP_ROWS = 400  # exact TreeSHAP costs trees x leaves x depth² per row: 10 ms per row for 150 trees here
CURVE_TRAIN_ROWS = 5_000
CITIES_SHOWN = 8  # best and worst each
TOP_FEATURES = 20
SHAP_FEATURES = 15
# Fixed bands, so reports of different versions compare band by band.
PRICE_BANDS = (0, 150_000, 250_000, 400_000, 600_000, 1_000_000, float("inf"))
SPLIT_COLOURS = {"train": "#9e9e9e", "eval": "#1f77b4", "holdout": "#d62728"}

SECTIONS = (
    "Metrics against the baselines",
    "Predicted against actual",
    "Residuals by month",
    "Error by city",
    "Error by price band",
    "Feature importance (gain)",
    "SHAP summary",
    "Learning curve",
)
INTERVALS_SECTION = "Interval coverage"


class ReportError(Exception):
    """A report that cannot be rendered truthfully, e.g. from data the version was not trained on."""


@dataclass(frozen=True)
class Scored:
    """One split with the saved model's predictions."""

    name: str
    frame: pd.DataFrame
    matrix: np.ndarray
    actual: np.ndarray
    predicted: np.ndarray

    @property
    def pct_error(self) -> np.ndarray:
        return (self.predicted - self.actual) / self.actual * 100


def write_documents(folder: Path, manifest: dict[str, Any], splits: Splits) -> None:
    """Render report and card from the version's saved files; write the manifest with their checksums."""
    booster = lightgbm.Booster(model_str=(folder / MODEL_FILE).read_text())
    encoders = Encoders.from_dict(json.loads((folder / ENCODERS_FILE).read_text()))
    page = render_report(manifest, booster, score_splits(booster, encoders, splits))
    (folder / REPORT_FILE).write_text(page)
    manifest["files"][REPORT_FILE] = sha256(page.encode())
    manifest["files"][CARD_FILE] = write_card(folder / CARD_FILE, manifest)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")


def score_splits(booster: lightgbm.Booster, encoders: Encoders, splits: Splits) -> dict[str, Scored]:
    scored = {}
    for name in ("train", "eval", "holdout"):
        frame = getattr(splits, name)
        matrix = features_of(frame, encoders)
        scored[name] = Scored(name, frame, matrix, frame[TARGET].to_numpy(np.float64), booster.predict(matrix))
    return scored


def render_report(manifest: dict[str, Any], booster: lightgbm.Booster, scored: dict[str, Scored]) -> str:
    """The whole page as one HTML string."""
    charts: list[tuple[str, str, Callable[[], Figure]]] = [
        (SECTIONS[1], "Each point is one zipcode-month; the line is a perfect prediction.", lambda: _scatter(scored)),
        (
            SECTIONS[2],
            "Median error per month in % of the actual price, with the 10-90 % band. Train months are in-sample.",
            lambda: _by_month(scored),
        ),
        (SECTIONS[3], "Holdout MAPE of the best and worst predicted cities.", lambda: _by_city(scored["holdout"])),
        (
            SECTIONS[4],
            "MAPE per band of the actual price, with the row count.",
            lambda: _by_band([scored["eval"], scored["holdout"]]),
        ),
        (SECTIONS[5], "Total gain of the splits on each feature.", lambda: _importance(booster)),
        (
            SECTIONS[6],
            f"Exact SHAP values (LightGBM's pred_contrib) of {SHAP_ROWS:,} holdout rows: how far each feature "
            "moves a prediction, coloured by the feature's value.",
            lambda: _shap(booster, scored["holdout"]),
        ),
        (
            SECTIONS[7],
            "RMSE after each tree of the saved model; it ends at the best iteration early stopping chose on eval.",
            lambda: _curve(booster, scored),
        ),
    ]
    body = [_header(manifest), _section(SECTIONS[0], _metrics_table(manifest["metrics"]))]
    for title, caption, draw in charts:
        extra = _city_table(scored["holdout"]) if title == SECTIONS[3] else ""
        body.append(_section(title, f"<p>{html.escape(caption)}</p>{_img(draw(), title)}{extra}"))
    if "intervals" in manifest:
        body.append(_section(INTERVALS_SECTION, _intervals(manifest["intervals"])))
    title = f"house-prices model {manifest['version']}"
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
    )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:860px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{padding:2px 10px;border-bottom:1px solid #ddd;"
    "text-align:right}td:first-child,th:first-child,td.l{text-align:left}img{max-width:100%}"
    "h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:2px solid #1f77b4}p{margin:.3em 0}"
)


def _section(title: str, content: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{content}</section>"


def _img(figure: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _header(manifest: dict[str, Any]) -> str:
    data = manifest["training_data"]
    params = manifest["params"]
    rows = ", ".join(f"{split} {count:,}" for split, count in data["rows"].items())
    periods = ", ".join(f"{s} {p[0]} to {p[1]}" for s, p in data.get("period", {}).items() if p)
    facts = [
        ("created", manifest["created_at"]),
        ("data", data.get("source", "not recorded")),
        ("fingerprint", data["fingerprint"]),
        ("rows", rows),
        ("period", periods or "not recorded"),
        ("LightGBM", f"{manifest['lightgbm_version']}, {params['best_iteration']} trees"),
        (
            "parameters",
            ", ".join(f"{k}={_short(v)}" for k, v in params.items() if k not in ("best_iteration", "verbosity")),
        ),
    ]
    cells = "".join(f'<tr><th>{html.escape(k)}</th><td class="l">{html.escape(str(v))}</td></tr>' for k, v in facts)
    return f"<table>{cells}</table>"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _metrics_table(metrics: dict[str, dict[str, dict[str, float]]]) -> str:
    head = "<tr><th>split</th><th>model</th><th>MAE</th><th>RMSE</th><th>R2</th><th>MAPE %</th></tr>"
    rows = [
        f"<tr><td>{html.escape(split)}</td><td class='l'>{html.escape(model)}</td><td>{m['MAE']:,.0f}</td>"
        f"<td>{m['RMSE']:,.0f}</td><td>{m['R2']:.4f}</td><td>{m['MAPE']:.2f}</td></tr>"
        for split, models in metrics.items()
        for model, m in models.items()
    ]
    return (
        "<p>LightGBM against a median and a linear baseline. Eval chose the early stopping; "
        "the holdout (from 2022) was used for nothing else.</p>"
        f"<table>{head}{''.join(rows)}</table>"
    )


def _sample(n: int, size: int) -> np.ndarray:
    """Fixed row indices, so a re-rendered report draws the same points."""
    return np.sort(np.random.default_rng(0).choice(n, size=size, replace=False)) if n > size else np.arange(n)


def _scatter(scored: dict[str, Scored]) -> Figure:
    figure = Figure(figsize=(9, 4.2))
    axes = figure.subplots(1, 2, sharex=True, sharey=True)
    for ax, split in zip(axes, ("eval", "holdout"), strict=True):
        s = scored[split]
        rows = _sample(len(s.actual), SCATTER_POINTS)
        ax.scatter(s.actual[rows], s.predicted[rows], s=4, alpha=0.35, color=SPLIT_COLOURS[split], linewidths=0)
        low, high = float(s.actual.min()), float(s.actual.max())
        ax.plot([low, high], [low, high], color="black", linewidth=1)
        ax.set(xscale="log", yscale="log", title=f"{split} ({len(s.actual):,} rows)", xlabel="actual price ($)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("predicted price ($)")
    return figure


def _by_month(scored: dict[str, Scored]) -> Figure:
    figure = Figure(figsize=(9, 3.8))
    ax = figure.subplots()
    for name, s in scored.items():
        months = pd.to_datetime(s.frame["date"]).to_numpy()
        grouped = pd.Series(s.pct_error).groupby(months)
        low, high = grouped.quantile(0.1), grouped.quantile(0.9)
        ax.fill_between(low.index, low.to_numpy(), high.to_numpy(), color=SPLIT_COLOURS[name], alpha=0.2)
        median = grouped.median()
        ax.plot(median.index, median.to_numpy(), color=SPLIT_COLOURS[name], label=name)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(ylabel="predicted - actual, % of actual")
    ax.legend(loc="upper left")
    ax.grid(True, alpha=0.3)
    return figure


def _city_errors(s: Scored) -> pd.DataFrame:
    frame = pd.DataFrame({"city": s.frame["city_full"].astype(str), "ape": np.abs(s.pct_error)})
    return frame.groupby("city")["ape"].agg(MAPE="mean", rows="size").sort_values("MAPE")


def _best_and_worst(errors: pd.DataFrame) -> pd.DataFrame:
    if len(errors) <= 2 * CITIES_SHOWN:
        return errors
    return pd.concat([errors.head(CITIES_SHOWN), errors.tail(CITIES_SHOWN)])


def _by_city(s: Scored) -> Figure:
    errors = _city_errors(s)
    shown = _best_and_worst(errors)
    median = float(errors["MAPE"].median())
    figure = Figure(figsize=(9, 0.28 * len(shown) + 1.2))
    ax = figure.subplots()
    colours = ["#2ca02c" if v <= median else "#d62728" for v in shown["MAPE"]]
    ax.barh(range(len(shown)), shown["MAPE"].to_numpy(), color=colours)
    ax.set_yticks(range(len(shown)), [f"{c} ({n:,})" for c, n in zip(shown.index, shown["rows"], strict=True)])
    ax.invert_yaxis()
    ax.axvline(median, color="black", linewidth=0.8, linestyle="--")
    ax.set(xlabel=f"holdout MAPE, % (dashed: the median city, {median:.1f} %)")
    return figure


def _city_table(s: Scored) -> str:
    errors = _city_errors(s)
    shown = _best_and_worst(errors)
    rows = "".join(
        f"<tr><td>{html.escape(city)}</td><td>{row.MAPE:.2f}</td><td>{int(row.rows):,}</td></tr>"
        for city, row in shown.iterrows()
    )
    return (
        f"<p>{len(errors)} cities in the holdout; shown: the {min(len(errors), CITIES_SHOWN)} best and worst.</p>"
        f"<table><tr><th>city</th><th>MAPE %</th><th>rows</th></tr>{rows}</table>"
    )


def _band_labels() -> list[str]:
    def short(v: float) -> str:
        return f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1e3:g}k"

    inner = [f"{short(lo)}-{short(hi)}" for lo, hi in itertools.pairwise(PRICE_BANDS[1:-1])]
    return [f"< {short(PRICE_BANDS[1])}", *inner, f">= {short(PRICE_BANDS[-2])}"]


def _by_band(splits: list[Scored]) -> Figure:
    labels = _band_labels()
    figure = Figure(figsize=(9, 3.8))
    ax = figure.subplots()
    width = 0.8 / len(splits)
    for i, s in enumerate(splits):
        band = pd.cut(s.actual, PRICE_BANDS, right=False, labels=labels)
        grouped = pd.Series(np.abs(s.pct_error)).groupby(band, observed=False)
        mape, count = grouped.mean().fillna(0).to_numpy(), grouped.size().to_numpy()
        x = np.arange(len(labels)) + (i - (len(splits) - 1) / 2) * width
        bars = ax.bar(x, mape, width, color=SPLIT_COLOURS[s.name], label=s.name)
        ax.bar_label(bars, [f"{n:,}" for n in count], fontsize=7)
    ax.set_xticks(np.arange(len(labels)), labels)
    ax.set(xlabel="actual price ($)", ylabel="MAPE, %")
    ax.legend()
    return figure


def _importance(booster: lightgbm.Booster) -> Figure:
    gain = booster.feature_importance("gain")
    order = np.argsort(gain)[::-1][:TOP_FEATURES]
    figure = Figure(figsize=(9, 0.26 * len(order) + 1))
    ax = figure.subplots()
    ax.barh(range(len(order)), gain[order] / gain.sum() * 100, color="#1f77b4")
    ax.set_yticks(range(len(order)), [FEATURE_NAMES[i] for i in order])
    ax.invert_yaxis()
    ax.set(xlabel="share of total gain, %")
    return figure


def _shap(booster: lightgbm.Booster, s: Scored) -> Figure:
    rows = _sample(len(s.matrix), SHAP_ROWS)
    matrix = s.matrix[rows]
    contributions = booster.predict(matrix, pred_contrib=True)[:, :-1]  # the last column is the base value
    order = np.argsort(np.abs(contributions).mean(axis=0))[::-1][:SHAP_FEATURES]
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(rows))
    figure = Figure(figsize=(9, 0.32 * len(order) + 1.2))
    ax = figure.subplots()
    for position, feature in enumerate(order):
        values = pd.Series(matrix[:, feature]).rank(pct=True).to_numpy()
        points = ax.scatter(
            contributions[:, feature],
            position + jitter,
            c=values,
            cmap="coolwarm",
            vmin=0,
            vmax=1,
            s=5,
            linewidths=0,
        )
    ax.set_yticks(range(len(order)), [FEATURE_NAMES[i] for i in order])
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set(xlabel="SHAP value: effect on the predicted price ($)")
    figure.colorbar(points, ax=ax, label="feature value (rank: low to high)", pad=0.01)
    return figure


def learning_curve(booster: lightgbm.Booster, matrix: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """RMSE after each tree: the trees' outputs add up, so one tree's prediction at a time suffices."""
    running = np.zeros(len(matrix))
    rmse = np.empty(booster.num_trees())
    for i in range(len(rmse)):
        # One thread: hundreds of tiny calls, each of which would wake a thread pool.
        running += booster.predict(matrix, start_iteration=i, num_iteration=1, num_threads=1)
        rmse[i] = np.sqrt(np.mean((running - actual) ** 2))
    return rmse


def _curve(booster: lightgbm.Booster, scored: dict[str, Scored]) -> Figure:
    figure = Figure(figsize=(9, 3.6))
    ax = figure.subplots()
    for name, s in scored.items():
        rows = _sample(len(s.matrix), CURVE_TRAIN_ROWS) if name == "train" else np.arange(len(s.matrix))
        rmse = learning_curve(booster, s.matrix[rows], s.actual[rows])
        ax.plot(np.arange(1, len(rmse) + 1), rmse, color=SPLIT_COLOURS[name], label=f"{name} (last {rmse[-1]:,.0f})")
    ax.set(yscale="log", xlabel="trees", ylabel="RMSE ($)")
    ax.legend()
    ax.grid(True, alpha=0.3)
    return figure


def _intervals(intervals: Any) -> str:
    """Nominal against observed coverage, from the manifest's `intervals` block, whatever else it holds."""
    _, observed = observed_coverage(intervals if isinstance(intervals, dict) else {})
    levels = [(f"{level * 100:g}", level, value) for level, value in observed.items()]
    shown = html.escape(json.dumps(intervals, indent=2))
    detail = f"<details><summary>intervals in the manifest</summary><pre>{shown}</pre></details>"
    if not levels:
        return "<p>The manifest has intervals but no numeric coverage to show.</p>" + detail
    figure = Figure(figsize=(6, 3.2))
    ax = figure.subplots()
    x = np.arange(len(levels))
    ax.bar(x - 0.2, [n * 100 for _, n, _ in levels], 0.4, color="#9e9e9e", label="nominal")
    ax.bar(x + 0.2, [o * 100 for _, _, o in levels], 0.4, color="#1f77b4", label="observed")
    ax.set_xticks(x, [f"{name} % interval" for name, _, _ in levels])
    ax.set(ylabel="coverage, %", ylim=(0, 105))
    ax.legend(loc="lower right")
    rows = "".join(
        f"<tr><td>{html.escape(name)} %</td><td>{n * 100:.1f}</td><td>{o * 100:.1f}</td></tr>" for name, n, o in levels
    )
    return (
        "<p>Share of actual prices inside the prediction interval, against the share promised.</p>"
        + _img(figure, INTERVALS_SECTION)
        + f"<table><tr><th>interval</th><th>nominal %</th><th>observed %</th></tr>{rows}</table>"
        + detail
    )


def rerender(artifacts: Path, version: str, splits: Splits) -> Path:
    """Write report and card again for an existing version, from the data it was trained on."""
    store = open_store(str(artifacts))
    served = load_artifacts(store, version)  # never describe a model that would not be served
    trained_on = served.manifest["training_data"]["fingerprint"]
    given = fingerprint(splits.train)
    if given != trained_on:
        raise ReportError(
            f"version {served.version} was trained on data with fingerprint {trained_on[:12]}..., these files give "
            f"{given[:12]}...: pass the --data/--metros (or --zipcodes) it was trained with"
        )
    folder = artifacts / served.version
    write_documents(folder, served.manifest, splits)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--version", default=LATEST, help="a version folder name; default: LATEST")
    parser.add_argument("--data", type=Path, help="HouseTS CSV the version was trained on; default: synthetic")
    parser.add_argument("--metros", type=Path, help="US metros CSV (city, lat, lng) for --data")
    parser.add_argument("--zipcodes", type=int, default=300, help="synthetic size the version was trained on")
    args = parser.parse_args()
    if args.data and not args.metros:
        parser.error("--data needs --metros (the CSV with city, lat, lng)")
    splits, _ = load_splits(args.data, args.metros, args.zipcodes)
    try:
        folder = rerender(args.artifacts, args.version, splits)
    except (ArtifactError, ReportError) as exc:
        parser.exit(1, f"error: {exc}\n")
    print(f"wrote {folder / REPORT_FILE} and {folder / CARD_FILE}; updated {folder / MANIFEST_FILE}")


if __name__ == "__main__":
    main()
