"""Score a local CSV file with a trained model, with a progress bar:

    python -m training.score_csv in.csv out.csv      (make batch IN=... OUT=...)

The same scorer as the S3 handler (`chalicelib.batch.scoring`); this command line and its
progress bar are a developer's tool, so they live outside the Lambda package.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from chalicelib.artifacts import LATEST
from chalicelib.batch.framing import BatchFileError, Readable
from chalicelib.batch.scoring import BatchSummary, score_csv_stream
from chalicelib.predictor import Predictor, load_predictor


class _Counting:
    """A byte stream that reports how much has been read (for a progress bar)."""

    def __init__(self, source: Readable, progress: Callable[[int], object]) -> None:
        self.source = source
        self.progress = progress

    def read(self, size: int) -> bytes:
        data = self.source.read(size)
        self.progress(len(data))
        return data


def score_csv_file(
    source: Path,
    target: Path,
    predictor: Predictor,
    progress: Callable[[int], object] | None = None,
    explain: bool = False,
) -> BatchSummary:
    """Score a local file; the target appears only complete (written aside, then renamed)."""
    partial = target.with_name(target.name + ".partial")
    try:
        with source.open("rb") as reader, partial.open("wb") as writer:
            stream: Readable = _Counting(reader, progress) if progress else reader
            summary = score_csv_stream(stream, writer.write, predictor, explain=explain)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.score_csv",
        description="Score a CSV file with the model at ARTIFACTS_URI (default: artifacts).",
    )
    parser.add_argument("source", type=Path, help="input CSV: raw HouseTS rows or the 39 model features")
    parser.add_argument(
        "target", type=Path, help="output CSV: the input plus predicted_price, lower, upper, error and warnings"
    )
    parser.add_argument("--explain", action="store_true", help="also each feature's contribution (contrib_* columns)")
    args = parser.parse_args(argv)
    predictor = load_predictor(os.environ.get("ARTIFACTS_URI", "artifacts"), os.environ.get("MODEL_VERSION", LATEST))
    started = time.perf_counter()
    with tqdm(total=args.source.stat().st_size, unit="B", unit_scale=True, file=sys.stderr) as bar:
        try:
            summary = score_csv_file(args.source, args.target, predictor, bar.update, args.explain)
        except BatchFileError as exc:
            bar.close()
            print(f"cannot score {args.source}: {exc}", file=sys.stderr)
            return 1
    seconds = time.perf_counter() - started
    print(
        f"{summary.rows:,} rows ({summary.rows_with_errors:,} with errors) in {seconds:.1f} s "
        f"({summary.rows / seconds:,.0f} rows/s), model {summary.model_version} -> {args.target}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
