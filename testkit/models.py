"""The small test model: synthetic data, trained by the real pipeline, written as a version.

Tests and benchmarks train with `training.train` itself (no hand-made model files), so
what they load is exactly what `make train` publishes, only smaller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from training.data import Splits

# Small enough to train in seconds, large enough for every city, quarter and encoder.
TEST_ZIPCODES = 120
TEST_ROUNDS = 150


@dataclass(frozen=True)
class TrainedModel:
    """A version written under `artifacts_dir` (with LATEST), and what it was trained on."""

    artifacts_dir: Path
    version_dir: Path
    frame: pd.DataFrame
    result: dict[str, Any]

    @property
    def version(self) -> str:
        return self.version_dir.name


def synthetic_csvs(folder: Path, zipcodes: int = TEST_ZIPCODES) -> tuple[Path, Path]:
    """The HouseTS and metros CSVs of `zipcodes` deterministic synthetic zipcodes."""
    from training.data import generate_synthetic

    return generate_synthetic(folder, zipcodes)


def load_splits(houses: Path, metros: Path) -> tuple[pd.DataFrame, Splits]:
    """The cleaned frame and its date splits, as training reads them."""
    from training.data import load_housets, split_by_date

    frame, dropped = load_housets(houses, metros)
    return frame, split_by_date(frame, dropped)


def train_version(splits: Splits, artifacts_dir: Path, rounds: int = TEST_ROUNDS) -> tuple[Path, dict[str, Any]]:
    """Train quietly and write one version (model.txt, encoders.json, manifest.json, LATEST)."""
    from training.train import train, write_version

    result = train(splits, rounds, log_every=0)
    return write_version(result, splits, artifacts_dir), result


def train_model(folder: Path, zipcodes: int = TEST_ZIPCODES, rounds: int = TEST_ROUNDS) -> TrainedModel:
    """The whole pipeline in one folder: data/ (the CSVs) and artifacts/ (the version)."""
    frame, splits = load_splits(*synthetic_csvs(folder / "data", zipcodes))
    version_dir, result = train_version(splits, folder / "artifacts", rounds)
    return TrainedModel(folder / "artifacts", version_dir, frame, result)
