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
    assert results["cold_start"]["api"]["cold_s"]["n"] == 2
    assert not results["cold_start"]["api"]["pandas_loaded"]
    assert set(results["warm_latency"]["api"]) == {"1", "100"}
    assert [b["rows"] for b in results["batch"]] == [20_000]
    assert all(t["result"] in ("PASS", "MISS", "n/a") for t in results["targets"])
    assert "target" in done.stdout
