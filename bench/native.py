"""LightGBM's C API through ctypes (chalicelib.lightgbm_native) beside the lightgbm package.

    python -m bench.native [--quick] [--runs N] [--repeats N] [--calls N]

First prediction: fresh interpreters (bench/native_child.py), native and package
alternating, each loading the bench's model text and predicting one row. Timed from just
before the parent starts the interpreter to the child's first prediction (both read
CLOCK_MONOTONIC), and within the child from its first line. Peak RSS is the child's VmHWM.
Warm: in this process, on the same model, `repeats` interleaved runs of `calls` calls each;
the table shows the median run's time per call. The package predicts a numpy row or matrix
with num_threads=1, as the current predictor does below 1,000 rows.
A script, never a test: it prints a table and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.child import BLOCKED_ON_API

REPO_ROOT = Path(__file__).resolve().parent.parent
MATRIX_ROWS = 100


def cold_run(kind: str, model_file: Path, row: list[float]) -> dict[str, Any]:
    spawned = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench.native_child", kind, str(model_file), json.dumps(row), ",".join(BLOCKED_ON_API)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.native child {kind} exited {done.returncode}:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["first_prediction_s"] = result["predicted_at"] - spawned
    return result


def per_call_us(function: Callable[[], object], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        function()
    return (time.perf_counter_ns() - start) / calls / 1000


def warm(model_file: Path, rows: Any, repeats: int, calls: int) -> dict[str, dict[str, float]]:
    """Median over interleaved runs of the time per call, native and package, one row and 100 rows."""
    import lightgbm

    from chalicelib.lightgbm_native import NativeBooster

    text = model_file.read_text()
    package = lightgbm.Booster(model_str=text)
    cols = rows.shape[1]
    one_list = rows[0].tolist()
    one_numpy = rows[:1].copy()
    matrix = rows[:MATRIX_ROWS].copy()
    with NativeBooster.from_string(text) as native:
        cases: dict[str, dict[str, Callable[[], object]]] = {
            "row": {
                "native": lambda: native.predict_row(one_list),
                "package": lambda: package.predict(one_numpy, num_threads=1),
            },
            "matrix": {
                "native": lambda: native.predict_matrix(matrix, len(matrix), cols, num_threads=1),
                "package": lambda: package.predict(matrix, num_threads=1),
            },
        }
        samples: dict[str, dict[str, list[float]]] = {case: {"native": [], "package": []} for case in cases}
        for case, functions in cases.items():
            for function in functions.values():
                per_call_us(function, max(calls // 10, 1))  # first-call costs, caches
            for _ in range(repeats):
                for kind, function in functions.items():
                    samples[case][kind].append(per_call_us(function, calls))
    return {case: {kind: statistics.median(s) for kind, s in kinds.items()} for case, kinds in samples.items()}


def format_table(cold: dict[str, list[dict[str, Any]]], warm_us: dict[str, dict[str, float]], calls: int) -> str:
    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in cold[kind])

    lines = [f"{'':44}{'native':>10}{'package':>10}{'ratio':>8}"]

    def line(label: str, native: float, package: float, fmt: str) -> None:
        ratio = f"{package / native:7.1f}x" if native else ""
        lines.append(f"{label:44}{native:>10{fmt}}{package:>10{fmt}}{ratio:>8}")

    runs = len(cold["native"])
    line(
        f"first prediction after spawn, ms ({runs} runs)",
        *(1000 * median(k, "first_prediction_s") for k in cold),
        ".1f",
    )
    spawn = [1000 * min(r["first_prediction_s"] for r in cold[k]) for k in cold]
    line("  fastest run, ms", *spawn, ".1f")
    line("  from the child's first line, ms", *(1000 * median(k, "in_process_s") for k in cold), ".1f")
    line("  peak RSS, MiB", *(median(k, "peak_rss_mib") for k in cold), ".1f")
    line(f"warm single row, us ({calls} calls/run)", warm_us["row"]["native"], warm_us["row"]["package"], ".1f")
    line(f"warm {MATRIX_ROWS}-row matrix, us", warm_us["matrix"]["native"], warm_us["matrix"]["package"], ".1f")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.native", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a measurement")
    parser.add_argument("--runs", type=int, help="fresh interpreters per kind (full: 10, quick: 3)")
    parser.add_argument("--repeats", type=int, help="interleaved warm runs per kind (full: 15, quick: 5)")
    parser.add_argument("--calls", type=int, help="calls per warm run (full: 2000, quick: 200)")
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "bench" / "results" / "cache")
    args = parser.parse_args(argv)

    import numpy as np

    from bench.__main__ import FULL, QUICK
    from bench.workload import trained_model

    plan = QUICK if args.quick else FULL
    runs = args.runs or (3 if args.quick else 10)
    repeats = args.repeats or (5 if args.quick else 15)
    calls = args.calls or (200 if args.quick else 2000)
    load_start = os.getloadavg()[0]
    model = trained_model(args.cache, plan.zipcodes, plan.rounds, log=lambda m: print(m, file=sys.stderr))
    rows = np.ascontiguousarray(model.features[:: max(len(model.features) // 1000, 1)][:1000], dtype=np.float64)
    row = rows[0].tolist()

    cold: dict[str, list[dict[str, Any]]] = {"native": [], "package": []}
    for kind in cold:
        cold_run(kind, model.model_file, row)  # bytecode and page cache; not counted
    for _ in range(runs):
        for kind in cold:
            cold[kind].append(cold_run(kind, model.model_file, row))
    answers = {r["prediction"] for runs_of_kind in cold.values() for r in runs_of_kind}
    if len(answers) != 1:
        raise RuntimeError(f"native and package children disagree: {sorted(answers)}")
    warm_us = warm(model.model_file, rows, repeats, calls)

    size_mib = model.model_file.stat().st_size / 2**20
    print(
        f"machine: {len(os.sched_getaffinity(0))} cores, python {sys.version.split()[0]}, "
        f"load average {load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    )
    print(f"model:   {model.zipcodes} synthetic zipcodes, {model.trees} trees, model.txt {size_mib:.1f} MiB")
    print(format_table(cold, warm_us, calls))


if __name__ == "__main__":
    main()
