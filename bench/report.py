"""Summaries of raw timings, the targets they are held to, and the printed table."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# Chalice's name for the function that serves every route.
API_FUNCTION = "api_handler"


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
    """The issues' targets, evaluated on one run's results."""
    from deploy.specs import API_PEAK_RSS_BYTES, MIB

    cold = results["cold_start"]
    warm = results["warm_latency"]
    api_size = results["sizes"]["functions"][API_FUNCTION]
    largest = max(results["batch"], key=lambda b: b["rows"]) if results["batch"] else None
    weakest = min(results["batch"], key=lambda b: b["e2e_vs_raw"]) if results["batch"] else None
    million = next((b for b in results["batch"] if b["rows"] >= 1_000_000), None)
    return [
        Target("API cold start vs reference", cold["speedup"], 10.0, "x", at_least=True),
        Target("API cold start / bare numpy+lightgbm import", cold["api_vs_floor"], 1.0, "x"),
        Target("warm 1-record p50 / bare C-API row", warm["api_vs_bare"].get("1"), 4.0, "x"),
        Target("warm 100-record p50 / bare C-API matrix", warm["api_vs_bare"].get("100"), 1.5, "x"),
        Target(
            "API size, function zip + layers, unzipped",
            api_size.get("unzipped_mib"),
            api_size["budget_unzipped_mib"],
            "MiB",
        ),
        Target("API peak RSS", results["peak_rss"]["api_mib"], API_PEAK_RSS_BYTES / MIB, "MiB"),
        Target("API heavy modules after first request", len(cold["api"]["heavy_modules"]), 0, "modules"),
        Target("API cold start, median", cold["api"]["cold_s"]["median"], 0.6, "s"),
        Target("warm 1-record p50", warm["api"]["1"]["p50_ms"], 0.5, "ms"),
        Target("warm 1-record p50 vs reference", warm["speedup"]["1"]["p50"], 20.0, "x", at_least=True),
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
    if isinstance(value, int):
        return str(value)
    return "-" if value is None else format(value, fmt)


def _ratio(value: float | None) -> str:
    return f"{_num(value, '.1f'):>9}x" if value is not None else f"{'-':>10}"


def _range(spread: dict[str, float | int], low: str, high: str) -> str:
    return f"{spread[low]:>5.3f}-{spread[high]:<6.3f}"


def format_table(results: dict[str, Any]) -> str:
    """The fixed-width report of one run."""
    lines = [
        f"machine: {results['machine']['nproc']} cores, {results['machine']['cpu']}, "
        f"python {results['machine']['python']}, lightgbm {results['machine']['lightgbm']}, "
        f"load average {results['machine']['loadavg_1min_at_start']:.2f} at start, "
        f"{results['machine']['loadavg_1min']:.2f} at end",
        f"model:   {results['model']['zipcodes']} synthetic zipcodes, {results['model']['train_rows']:,} "
        f"training rows, {results['model']['trees']} trees x {results['model']['num_leaves']} leaves, "
        f"model.txt {results['model']['model_file_mib']:.1f} MiB",
        "",
        *_handler_lines(results),
        "",
        *_floor_lines(results["cold_start"]),
        "",
        *_bare_lines(results["warm_latency"]),
        "",
        f"{'batch S3->S3 (pre-encoded CSV)':<32}{'e2e rows/s':>12}{'raw C API':>13}{'e2e/raw':>9}"
        f"{'e2e s':>8}{'peak RSS MiB':>14}{'threads':>9}",
    ]
    for b in results["batch"]:
        lines.append(
            f"{b['rows']:>12,} rows{'':<15}{b['e2e_rows_per_s']:>12,.0f}{b['raw_rows_per_s']:>13,.0f}"
            f"{b['e2e_vs_raw'] * 100:>8.0f}%{b['e2e_s']:>8.2f}{b['rss_peak_mib']:>14.1f}{b['num_threads']:>9}"
        )
    lines += ["", *_sizes_lines(results["sizes"]), "", f"{'target':<46}{'measured':>12}{'goal':>14}  result"]
    for t in targets(results):
        goal = f"{'>=' if t.at_least else '<='} {t.limit:g} {t.unit}"
        lines.append(f"{t.name:<46}{_num(t.value, '.3f'):>12}{goal:>14}  {t.verdict()}")
    return "\n".join(lines)


def _handler_lines(results: dict[str, Any]) -> list[str]:
    """Ours beside the tutorial's handler: cold start, warm latency, peak RSS."""
    cold, warm, rss = results["cold_start"], results["warm_latency"], results["peak_rss"]
    ours, ref = cold["api"], cold["reference"]
    lines = [
        f"{'API function vs reference (tutorial) handler':<46}{'ours':>12}{'reference':>12}{'ratio':>10}",
        f"{'cold start median, s':<46}{ours['cold_s']['median']:>12.3f}{ref['cold_s']['median']:>12.3f}"
        f"{_ratio(cold['speedup'])}",
        f"{'cold start p10-p90, s':<46}{_range(ours['cold_s'], 'p10', 'p90')}{_range(ref['cold_s'], 'p10', 'p90')}",
        f"{'cold start min-max, s':<46}{_range(ours['cold_s'], 'min', 'max')}{_range(ref['cold_s'], 'min', 'max')}",
        f"{'  of which import (median), s':<46}{ours['import_s']:>12.3f}{ref['import_s']:>12.3f}",
        f"{'  of which first request (median), s':<46}{ours['first_request_s']:>12.3f}{ref['first_request_s']:>12.3f}",
        f"{'  whole process incl. interpreter (median), s':<46}{ours['process_wall_s']['median']:>12.3f}"
        f"{ref['process_wall_s']['median']:>12.3f}",
        f"{'  runs':<46}{ours['cold_s']['n']:>12}{ref['cold_s']['n']:>12}",
        f"{'  heavy modules after first request':<46}{len(ours['heavy_modules']):>12}{len(ref['heavy_modules']):>12}"
        f"  ours: {', '.join(ours['heavy_modules']) or 'none'}",
    ]
    for size in warm["api"]:
        mine, theirs, speed = warm["api"][size], warm["reference"][size], warm["speedup"][size]
        label = f"warm {size}-record"
        lines += [
            f"{label + ' p50, ms':<46}{mine['p50_ms']:>12.3f}{theirs['p50_ms']:>12.3f}{_ratio(speed['p50'])}",
            f"{label + ' p99, ms':<46}{mine['p99_ms']:>12.3f}{theirs['p99_ms']:>12.3f}{_ratio(speed['p99'])}",
            f"{'  requests':<46}{mine['n']:>12}{theirs['n']:>12}",
        ]
    lines.append(f"{'peak RSS, MiB':<46}{rss['api_mib']:>12.1f}{rss['reference_mib']:>12.1f}{_ratio(rss['ratio'])}")
    return lines


def _floor_lines(cold: dict[str, Any]) -> list[str]:
    """Our whole cold start beside only importing numpy and lightgbm, in the same run."""
    ours, floor = cold["api"], cold["floor"]
    return [
        f"{'API cold start vs bare `import numpy, lightgbm`':<46}{'ours':>12}{'bare import':>12}{'ours/bare':>10}",
        f"{'median, s (ours: to the first reply)':<46}{ours['cold_s']['median']:>12.3f}"
        f"{floor['cold_s']['median']:>12.3f}{_ratio(cold['api_vs_floor'])}",
        f"{'min-max, s':<46}{_range(ours['cold_s'], 'min', 'max')}{_range(floor['cold_s'], 'min', 'max')}",
        f"{'peak RSS (median of runs), MiB':<46}{ours['rss_after_first_request_mib']['median']:>12.1f}"
        f"{floor['rss_peak_mib']['median']:>12.1f}",
    ]


def _bare_lines(warm: dict[str, Any]) -> list[str]:
    """Warm requests beside the same rows through the loaded booster alone, in the same process."""
    lines = [f"{'API function vs its own bare C API (warm)':<46}{'ours':>12}{'bare':>12}{'ours/bare':>10}"]
    for size, bare in warm["bare"].items():
        what = "predict_row" if size == "1" else "matrix, 1 thread"
        lines.append(
            f"{f'{size}-record p50, ms (bare {what})':<46}{warm['api'][size]['p50_ms']:>12.3f}"
            f"{bare['p50_ms']:>12.4f}{_ratio(warm['api_vs_bare'][size])}"
        )
    explained = warm["explained"]["1"]
    lines += [
        f"{'1-record explained p50, ms':<46}{explained['p50_ms']:>12.3f}",
        f"{'1-record explained p99, ms':<46}{explained['p99_ms']:>12.3f}",
        f"{'  requests':<46}{explained['n']:>12}",
    ]
    return lines


def _sizes_lines(sizes: dict[str, Any]) -> list[str]:
    lines = [f"{'sizes, MiB':<46}{'unzipped':>12}{'zipped':>12}"]
    for name, part in sizes["parts"].items():
        lines.append(f"{name:<46}{part['unzipped_mib']:>12.1f}{_num(part['zipped_mib'], '.1f'):>12}")
    for name, note in sizes["missing"].items():
        lines.append(f"{name:<46}{'-':>12}{'-':>12}  {note}")
    for name, total in sizes["functions"].items():
        budget = f"budget {total['budget_unzipped_mib']:g} unzipped"
        if "missing" in total:
            lines.append(f"{name + ' total':<46}{'-':>12}{'-':>12}  not built: {', '.join(total['missing'])}; {budget}")
            continue
        lines.append(
            f"{name + ' total':<46}{total['unzipped_mib']:>12.1f}{_num(total['zipped_mib'], '.1f'):>12}"
            f"  = {' + '.join(total['parts'])}; {budget}"
        )
    return lines
