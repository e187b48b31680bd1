"""The tunable LightGBM parameters: the search space the tuner samples and the file it hands to training.

`python -m training.tune` writes the best parameters as a flat JSON object of these names
(`best.json`); `python -m training.train --params best.json` reads it back through
`load_params`, which names every unknown field, wrong type and impossible value at once.
Other LightGBM settings (objective, seed, bagging frequency) stay fixed in `training.train`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Tunable:
    """One parameter: the range the tuner searches, and the range LightGBM accepts at all."""

    name: str
    low: float
    high: float
    log: bool
    integer: bool
    valid_low: float
    valid_high: float
    why: str


SEARCH_SPACE = (
    Tunable("num_leaves", 15, 255, True, True, 2, 131_072, "tree size: capacity against overfitting"),
    Tunable("learning_rate", 0.01, 0.3, True, False, 1e-6, 1.0, "shrinkage; early stopping picks the rounds"),
    Tunable("min_child_samples", 5, 200, True, True, 1, 10_000_000, "rows per leaf: smooths rare zipcodes"),
    Tunable("feature_fraction", 0.4, 1.0, False, False, 1e-3, 1.0, "columns per tree: decorrelates trees"),
    Tunable("bagging_fraction", 0.4, 1.0, False, False, 1e-3, 1.0, "rows per tree (bagging_freq=1)"),
    # Gradients are price residuals (1e4-1e5 per row) and hessians row counts: the penalties' ranges follow.
    Tunable("lambda_l1", 1e-3, 1e6, True, False, 0.0, 1e12, "L1 penalty: shrinks small leaf sums to zero"),
    Tunable("lambda_l2", 1e-3, 1e3, True, False, 0.0, 1e12, "L2 penalty: shrinks leaves with few rows"),
)
TUNABLE = {t.name: t for t in SEARCH_SPACE}


class ParamsError(ValueError):
    """A parameters file that training cannot use; the message names each field and its problem."""


def check_params(params: Any) -> dict[str, float | int]:
    """The parameters if every field is tunable and valid; otherwise ParamsError naming all problems."""
    if not isinstance(params, dict):
        raise ParamsError(f"parameters must be a JSON object of LightGBM parameters, got {type(params).__name__}")
    problems = []
    for name, value in params.items():
        spec = TUNABLE.get(name)
        if spec is None:
            problems.append(f"{name}: not a tunable parameter (tunable: {', '.join(TUNABLE)})")
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            problems.append(f"{name}: must be a finite number, got {value!r}")
        elif spec.integer and not float(value).is_integer():
            problems.append(f"{name}: must be an integer, got {value!r}")
        elif not spec.valid_low <= value <= spec.valid_high:
            problems.append(f"{name}: must be in [{spec.valid_low:g}, {spec.valid_high:g}], got {value!r}")
    if problems:
        raise ParamsError("; ".join(problems))
    return {name: int(v) if TUNABLE[name].integer else float(v) for name, v in params.items()}


def load_params(path: Path) -> dict[str, float | int]:
    try:
        params = json.loads(path.read_text())
    except OSError as exc:
        raise ParamsError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ParamsError(f"{path} is not JSON: {exc}") from None
    try:
        return check_params(params)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None


def write_params(params: dict[str, float | int], path: Path) -> None:
    path.write_text(json.dumps(check_params(params), indent=2, sort_keys=True) + "\n")
