"""The benchmark script runs end to end at small sizes and writes its JSON.

Never asserts a time: timings on a shared 2-core machine are facts to read, not to test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_bench_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--runs",
            "2",
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert {"machine", "model", "cold_start", "warm_latency", "peak_rss", "batch", "sizes", "targets"} <= set(results)
    cold, warm = results["cold_start"], results["warm_latency"]
    assert {"api", "reference", "floor", "speedup", "api_vs_floor"} <= set(cold)
    assert cold["api"]["cold_s"]["n"] == cold["reference"]["cold_s"]["n"] == cold["floor"]["cold_s"]["n"] == 2
    # The API's first answer imported none of them; the reference is the tutorial's stack.
    assert cold["api"]["heavy_modules"] == []
    assert {"pandas", "lightgbm", "boto3"} <= set(cold["reference"]["heavy_modules"])
    assert set(warm["api"]) == set(warm["reference"]) == set(warm["bare"]) == set(warm["api_vs_bare"]) == {"1", "100"}
    assert warm["bare"]["1"]["n"] == warm["api"]["1"]["n"] == warm["explained"]["1"]["n"]
    assert [b["rows"] for b in results["batch"]] == [20_000]
    assert "api_handler" in results["sizes"]["functions"]
    names = {t["name"] for t in results["targets"]}
    assert {
        "API cold start vs reference",
        "API cold start / bare numpy+lightgbm import",
        "warm 1-record p50 / bare C-API row",
        "warm 100-record p50 / bare C-API matrix",
        "API size, function zip + layers, unzipped",
        "API peak RSS",
        "API heavy modules after first request",
    } <= names
    assert all(t["result"] in ("PASS", "MISS", "n/a") for t in results["targets"])
    assert "target" in done.stdout
