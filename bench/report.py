"""Summaries of raw timings, the targets they are held to, and the printed table."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


def spread(values: list[float]) -> dict[str, float | int]:
    """Median, p10/p90 and min/max of a sample."""
    data = np.asarray(values, dtype=np.float64)
    return {
        "n": len(data),
        "median": float(np.median(data)),
        "p10": float(np.percentile(data, 10)),
        "p90": float(np.percentile(data, 90)),
        "min": float(data.min()),
        "max": float(data.max()),
    }


def latency(seconds: list[float]) -> dict[str, float | int]:
    """p50/p99/mean of request latencies, in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    return {
        "n": len(ms),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def ratio(slow: float | None, fast: float | None) -> float | None:
    """How many times `fast` beats `slow`; None when either is missing."""
    if slow is None or not fast:
        return None
    return slow / fast


@dataclass(frozen=True)
class Target:
    """One goal: `value` must be at most (or at least) `limit`."""

    name: str
    value: float | None
    limit: float
    unit: str
    at_least: bool = False

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "n/a"}[self.passed]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"result": self.verdict()}


def targets(results: dict[str, Any]) -> list[Target]:
    """The issue's targets, evaluated on one run's results."""
    cold = results["cold_start"]
    warm = results["warm_latency"]
    largest = max(results["batch"], key=lambda b: b["rows"]) if results["batch"] else None
    weakest = min(results["batch"], key=lambda b: b["e2e_vs_raw"]) if results["batch"] else None
    million = next((b for b in results["batch"] if b["rows"] >= 1_000_000), None)
    return [
        Target("API cold start, median", cold["api"]["cold_s"]["median"], 0.6, "s"),
        Target("API cold start vs reference", cold["speedup"], 10.0, "x", at_least=True),
        Target("warm 1-record p50", warm["api"]["1"]["p50_ms"], 0.5, "ms"),
        Target("warm 1-record p50 vs reference", warm["speedup"]["1"]["p50"], 20.0, "x", at_least=True),
        Target("API peak RSS", results["peak_rss"]["api_mib"], 150.0, "MiB"),
        Target(
            "batch e2e rows/s vs raw predict (worst size)",
            weakest["e2e_vs_raw"] * 100 if weakest else None,
            70.0,
            "%",
            at_least=True,
        ),
        Target(
            "batch peak RSS on 1M rows" if million else "batch peak RSS (largest size; 1M not run)",
            (million or largest)["rss_peak_mib"] if (million or largest) else None,
            400.0,
            "MiB",
        ),
    ]


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_table(results: dict[str, Any]) -> str:
    """The fixed-width report of one run."""
    cold, warm, rss = results["cold_start"], results["warm_latency"], results["peak_rss"]
    api_cold, ref_cold = cold["api"]["cold_s"], cold["reference"]["cold_s"]
    lines = [
        f"machine: {results['machine']['nproc']} cores, {results['machine']['cpu']}, "
        f"python {results['machine']['python']}, lightgbm {results['machine']['lightgbm']}, "
        f"load average {results['machine']['loadavg_1min_at_start']:.2f} at start, "
        f"{results['machine']['loadavg_1min']:.2f} at end",
        f"model:   {results['model']['zipcodes']} synthetic zipcodes, {results['model']['train_rows']:,} "
        f"training rows, {results['model']['trees']} trees x {results['model']['num_leaves']} leaves, "
        f"model.txt {results['model']['model_file_mib']:.1f} MiB",
        "",
        f"{'API function vs reference (tutorial) handler':<46}{'ours':>12}{'reference':>12}{'ratio':>9}",
        f"{'cold start median, s':<46}{api_cold['median']:>12.3f}{ref_cold['median']:>12.3f}"
        f"{_num(cold['speedup'], '.1f'):>8}x",
        f"{'cold start p10-p90, s':<46}{api_cold['p10']:>5.3f}-{api_cold['p90']:<6.3f}"
        f"{ref_cold['p10']:>5.3f}-{ref_cold['p90']:<6.3f}",
        f"{'cold start min-max, s':<46}{api_cold['min']:>5.3f}-{api_cold['max']:<6.3f}"
        f"{ref_cold['min']:>5.3f}-{ref_cold['max']:<6.3f}",
        f"{'  of which import (median), s':<46}{cold['api']['import_s']:>12.3f}{cold['reference']['import_s']:>12.3f}",
        f"{'  of which first request (median), s':<46}{cold['api']['first_request_s']:>12.3f}"
        f"{cold['reference']['first_request_s']:>12.3f}",
        f"{'  whole process incl. interpreter (median), s':<46}{cold['api']['process_wall_s']['median']:>12.3f}"
        f"{cold['reference']['process_wall_s']['median']:>12.3f}",
        f"{'  runs':<46}{api_cold['n']:>12}{ref_cold['n']:>12}",
    ]
    for size in warm["api"]:
        ours, ref, speed = warm["api"][size], warm["reference"][size], warm["speedup"][size]
        label = f"warm {size}-record"
        lines += [
            f"{label + ' p50, ms':<46}{ours['p50_ms']:>12.3f}{ref['p50_ms']:>12.3f}{_num(speed['p50'], '.1f'):>8}x",
            f"{label + ' p99, ms':<46}{ours['p99_ms']:>12.3f}{ref['p99_ms']:>12.3f}{_num(speed['p99'], '.1f'):>8}x",
            f"{'  requests':<46}{ours['n']:>12}{ref['n']:>12}",
        ]
    lines.append(
        f"{'peak RSS, MiB':<46}{rss['api_mib']:>12.1f}{rss['reference_mib']:>12.1f}{_num(rss['ratio'], '.1f'):>8}x"
    )
    lines += [
        "",
        f"{'batch S3->S3 (pre-encoded CSV)':<32}{'e2e rows/s':>12}{'raw predict':>13}{'e2e/raw':>9}"
        f"{'e2e s':>8}{'peak RSS MiB':>14}{'threads':>9}",
    ]
    for b in results["batch"]:
        lines.append(
            f"{b['rows']:>12,} rows{'':<15}{b['e2e_rows_per_s']:>12,.0f}{b['raw_rows_per_s']:>13,.0f}"
            f"{b['e2e_vs_raw'] * 100:>8.0f}%{b['e2e_s']:>8.2f}{b['rss_peak_mib']:>14.1f}{b['num_threads']:>9}"
        )
    lines += ["", _sizes_lines(results["sizes"]), "", f"{'target':<46}{'measured':>12}{'goal':>12}  result"]
    for t in targets(results):
        goal = f"{'>=' if t.at_least else '<='} {t.limit:g} {t.unit}"
        lines.append(f"{t.name:<46}{_num(t.value, '.3f'):>12}{goal:>12}  {t.verdict()}")
    return "\n".join(lines)


def _sizes_lines(sizes: dict[str, Any]) -> str:
    if not sizes.get("built"):
        return f"sizes: layers not built ({sizes.get('note', 'run make layers')})"
    lines = [f"{'sizes, MiB':<46}{'unzipped':>12}{'zipped':>12}"]
    for name, part in sizes["parts"].items():
        lines.append(f"{name:<46}{part['unzipped_mib']:>12.1f}{_num(part['zipped_mib'], '.1f'):>12}")
    for name, total in sizes["functions"].items():
        lines.append(
            f"{name + ' total':<46}{total['unzipped_mib']:>12.1f}{_num(total['zipped_mib'], '.1f'):>12}"
            f"  = {' + '.join(total['parts'])}; budget {total['budget_unzipped_mib']:g} unzipped"
        )
    return "\n".join(lines)
