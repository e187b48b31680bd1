"""Score one large CSV through the fan-out and through one function, on moto's server, and compare.

    python -m bench.fanout [--rows 3000000] [--ranges 8] [--threads 4]

The same rig as tests/test_fanout.py (testkit.fanout), at full size: the upload event goes through
the real handler, the generated state machine runs on the local runner (`--threads` workers at
once), then the same upload is scored by the single-function path. Prints a table: rows, bytes,
seconds of each path, and whether the two outputs are byte-identical. Both paths share this
machine's cores, so the seconds say nothing about Lambda, where each range has its own vCPU.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from chalicelib.batch.settings import BatchSettings
from chalicelib.predictor import load_predictor
from testkit.fanout import csv_of_rows, fanout_rig
from testkit.models import train_model
from testkit.moto import DUMMY_AWS_ENV, MotoServer

REPO_ROOT = Path(__file__).resolve().parent.parent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--ranges", type=int, default=8)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "bench" / "results" / "cache" / "fanout")
    args = parser.parse_args(argv)
    logging.getLogger("house_prices").setLevel(logging.WARNING)  # one line per range is noise here
    for name, value in DUMMY_AWS_ENV.items():
        os.environ.setdefault(name, value)

    if not (args.cache / "artifacts" / "LATEST").is_file():
        print(f"training the test model into {args.cache}")
        train_model(args.cache)
    predictor = load_predictor(str(args.cache / "artifacts"))
    data = csv_of_rows((args.cache / "data" / "houses.csv").read_bytes(), args.rows)
    load = os.getloadavg()[0]

    with MotoServer() as server:
        s3 = server.client()
        settings = BatchSettings("bench-input", "incoming/", ".csv", "bench-output", "predictions/")
        for bucket in (settings.input_bucket, settings.output_bucket):
            s3.create_bucket(Bucket=bucket)
        rig = fanout_rig(s3, settings, predictor, len(data) // args.ranges + 1, args.threads)
        key = "incoming/big.csv"
        etag = rig.upload(key, data)

        start = time.perf_counter()
        (result,) = rig.deliver(key, etag, len(data))
        fanned_seconds = time.perf_counter() - start
        (execution,) = rig.runner.executions.values()
        if result.status != "fanned_out" or execution.status != "SUCCEEDED":
            raise RuntimeError(f"the fan-out did not succeed: {result.status}, {execution.status} {execution.error}")
        fanned = rig.output(key)
        s3.delete_object(Bucket=settings.output_bucket, Key=settings.output_key(key))

        start = time.perf_counter()
        (single_result,) = rig.deliver(key, etag, len(data), fan_out=False)
        single_seconds = time.perf_counter() - start
        single = rig.output(key)

    rows_out = fanned.count(b"\n") - 1
    print(f"\nfan-out vs one function, moto server on loopback, load average {load:.1f} at the start")
    print(
        f"{'rows in':>10} {'rows out':>10} {'MB in':>8} {'ranges':>6} {'threads':>7} "
        f"{'fan-out s':>9} {'single s':>9} {'identical':>9}"
    )
    print(
        f"{args.rows:>10,} {rows_out:>10,} {len(data) / 1e6:>8.0f} {execution.output['ranges']:>6} "
        f"{args.threads:>7} {fanned_seconds:>9.1f} {single_seconds:>9.1f} {'yes' if fanned == single else 'NO':>9}"
    )
    return 0 if fanned == single and rows_out == args.rows and single_result.status == "scored" else 1


if __name__ == "__main__":
    raise SystemExit(main())
