"""The soak runs its full 100,000 requests through the Lambda entry point and passes.

It runs in its own interpreter (as `python -m bench.soak` does) so its RSS is the app's
alone. Asserts the exit code and the printed counts against the plan; never a time.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.soak import MARKER, planned
from tests.conftest import ROOT

REQUESTS = 100_000
OUTCOME_ROW = re.compile(r"^\s*(\d{3})\s+(\d{3})\s+([\d,]+)\s*$", re.MULTILINE)


def test_soak_of_100000_requests_passes(artifacts_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--requests", str(REQUESTS), "--artifacts", str(artifacts_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,  # a hang guard, not a time target
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    outcomes = {(int(e), int(g)): int(n.replace(",", "")) for e, g, n in OUTCOME_ROW.findall(out)}
    plan = planned(REQUESTS)
    assert all(expected == got for expected, got in outcomes), outcomes
    assert Counter({expected: n for (expected, _), n in outcomes.items()}) == plan["statuses"]
    assert sum(outcomes.values()) == REQUESTS
    assert set(plan["statuses"]) == {200, 400, 405, 413, 415}  # every kind of outcome was exercised
    assert re.search(rf"^requests\s+{REQUESTS:,}$", out, re.MULTILINE)
    assert re.search(rf"^request log lines {plan['log_lines'].total():,} ", out, re.MULTILINE)
    assert re.search(r"^with body values\s+0 ", out, re.MULTILINE)
    assert re.search(r"^stray output\s+0 writes", out, re.MULTILINE)
    assert re.search(r"^RSS growth\s+[+-]\d", out, re.MULTILINE)
    assert MARKER not in done.stderr
    assert out.rstrip().endswith("PASS")
