"""Measure the service: `python -m bench [--quick] [--out bench/results/latest.json]`.

Cold start, warm latency and peak RSS of the API function beside the tutorial handler
(bench/tutorial_handler.py) and beside a bare `import numpy, lightgbm`; warm latency beside
the same process's bare C-API predictions; batch throughput S3->S3 beside the bare engine;
deployment sizes. Every handler runs in a fresh interpreter (bench/child.py) against a
local moto S3 server. Prints a table with PASS/MISS per target and writes the numbers as
JSON; it never fails because a target was missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import report
from bench.sizes import deployment_sizes
from bench.workload import (
    Model,
    batch_input,
    reference_joblib_files,
    reference_training_csv,
    trained_model,
)
from deploy.specs import HEAVY_MODULES
from testkit.events import s3_put_event
from testkit.lab import lab_records
from testkit.moto import MotoServer

REPO_ROOT = Path(__file__).resolve().parent.parent
BUCKET = "bench-house-prices"
ARTIFACTS_PREFIX = "models/house-prices"
BATCH_INPUT_PREFIX = "incoming/"
BATCH_OUTPUT_PREFIX = "predictions/"
WARM_SIZES = (1, 100)
# Cold-start targets, interleaved run by run: ours, the tutorial's handler, the bare import.
COLD_TARGETS = ("api", "reference", "floor")
# What the API function must not have imported after its first answer (issue 10): the
# deploy checks' list, and boto3, which the standard-library S3 reader replaced.
API_FORBIDDEN_MODULES = (*HEAVY_MODULES, "boto3", "botocore")
# Scored first in each batch process, untimed, as a warm container has: the imports
# (pandas) and first-call costs are not throughput.
BATCH_WARMUP_ROWS = 2_000
STARTED = time.perf_counter()


@dataclass(frozen=True)
class Plan:
    """How much of everything to run."""

    runs: int
    warm_requests: int
    reference_warm_requests: int
    warmup_requests: int
    batch_rows: tuple[int, ...]
    reference_rows: int
    zipcodes: int
    rounds: int


FULL = Plan(10, 2000, 300, 50, (100_000, 1_000_000), 576_000, 300, 600)
QUICK = Plan(3, 200, 30, 5, (20_000,), 20_000, 120, 150)


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a measurement")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "latest.json")
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "bench" / "results" / "cache")
    parser.add_argument("--layers-dir", type=Path, default=REPO_ROOT / "build" / "layers")
    parser.add_argument("--runs", type=int, help="cold starts per handler (full: 10)")
    parser.add_argument("--warm-requests", type=int, help="timed warm requests per size, ours (full: 2000)")
    parser.add_argument("--reference-warm-requests", type=int, help="same for the reference (full: 300)")
    parser.add_argument("--batch-rows", help="comma-separated CSV sizes (full: 100000,1000000)")
    parser.add_argument("--reference-rows", type=int, help="rows of the reference's training CSV (full: 576000)")
    parser.add_argument("--zipcodes", type=int, help="synthetic zipcodes to train on (full: 300; 6226 = real size)")
    parser.add_argument("--rounds", type=int, help="maximum boosting rounds (full: 600)")
    return parser.parse_args(argv)


def plan_of(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else FULL
    return Plan(
        runs=args.runs or base.runs,
        warm_requests=args.warm_requests or base.warm_requests,
        reference_warm_requests=args.reference_warm_requests or base.reference_warm_requests,
        warmup_requests=base.warmup_requests,
        batch_rows=tuple(int(n) for n in args.batch_rows.split(",")) if args.batch_rows else base.batch_rows,
        reference_rows=args.reference_rows or base.reference_rows,
        zipcodes=args.zipcodes or base.zipcodes,
        rounds=args.rounds or base.rounds,
    )


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import lightgbm
    import numpy

    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            cpu,
        )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "lightgbm": lightgbm.__version__,
        "numpy": numpy.__version__,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "loadavg_1min": os.getloadavg()[0],
    }


class Children:
    """Runs bench/child.py in fresh interpreters with the S3 endpoint's environment."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.count = 0

    def run(self, target: str, spec: dict[str, Any]) -> dict[str, Any]:
        self.count += 1
        spec_path = self.workdir / f"spec-{self.count}.json"
        result_path = self.workdir / f"result-{self.count}.json"
        spec_path.write_text(json.dumps(spec))
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "bench.child", target, str(spec_path), str(result_path)],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"bench.child {target} exited {done.returncode}:\n{done.stderr[-4000:]}")
        result = json.loads(result_path.read_text())
        result["process_s"] = time.perf_counter() - start
        return result


def stage_s3(server: MotoServer, model: Model, plan: Plan, cache: Path) -> dict[str, str]:
    """Put the artifacts, the reference's files and the batch inputs in S3; return their URIs."""
    from training.publish import publish

    client = server.client()
    client.create_bucket(Bucket=BUCKET)
    publish(model.artifacts_dir, BUCKET, ARTIFACTS_PREFIX, client, server.reader())
    client.upload_file(str(reference_training_csv(model, cache, plan.reference_rows)), BUCKET, "reference/training.csv")
    uris = {
        "ARTIFACTS_URI": f"s3://{BUCKET}/{ARTIFACTS_PREFIX}",
        "REFERENCE_TRAINING_CSV": f"s3://{BUCKET}/reference/training.csv",
    }
    for name, body in reference_joblib_files(model).items():
        client.put_object(Bucket=BUCKET, Key=f"reference/{name}.pkl", Body=body)
        uris[f"REFERENCE_{name.upper()}"] = f"s3://{BUCKET}/reference/{name}.pkl"
    return uris


def handler_runs(children: Children, plan: Plan) -> dict[str, Any]:
    """Cold starts of both handlers and the bare import, interleaved, then one warm series per handler."""
    records = lab_records()
    spec = {
        "records": records,
        "warm_sizes": [],
        "warm_requests": 0,
        "warmup_requests": 0,
        "heavy_modules": list(API_FORBIDDEN_MODULES),
    }
    for target in COLD_TARGETS:
        children.run(target, spec)  # compiles bytecode and fills the page cache; not counted
    cold: dict[str, list[dict[str, Any]]] = {target: [] for target in COLD_TARGETS}
    for run in range(plan.runs):
        for target in cold:
            cold[target].append(children.run(target, spec))
        log(
            f"cold start {run + 1}/{plan.runs}: ours {cold['api'][-1]['cold_s']:.3f} s, "
            f"reference {cold['reference'][-1]['cold_s']:.3f} s, "
            f"bare numpy+lightgbm import {cold['floor'][-1]['cold_s']:.3f} s"
        )
    warm = {}
    for target, requests in (("api", plan.warm_requests), ("reference", plan.reference_warm_requests)):
        warm_spec = spec | {
            "warm_sizes": list(WARM_SIZES),
            "warm_requests": requests,
            "warmup_requests": plan.warmup_requests,
        }
        warm[target] = children.run(target, warm_spec)
        log(f"warm series done: {target}, {requests} requests per size")
    return {"cold": cold, "warm": warm}


def summarize_handlers(runs: dict[str, Any]) -> dict[str, Any]:
    """Cold start spread, warm latency percentiles and peak RSS: ours beside the reference, the bare
    import and the bare C API."""
    cold: dict[str, Any] = {}
    for target in ("api", "reference"):
        results = runs["cold"][target]
        cold[target] = {
            "cold_s": report.spread([r["cold_s"] for r in results]),
            "import_s": report.spread([r["import_s"] for r in results])["median"],
            "first_request_s": report.spread([r["first_request_s"] for r in results])["median"],
            "interpreter_startup_s": report.spread([r["startup_s"] for r in results])["median"],
            "process_wall_s": report.spread([r["process_s"] for r in results]),
            "rss_after_first_request_mib": report.spread([r["rss_after_first_mib"] for r in results]),
            "heavy_modules": sorted({name for r in results for name in r["heavy_modules"]}),
            "modules_loaded": results[0]["modules_loaded"],
        }
    floor = runs["cold"]["floor"]
    cold["floor"] = {
        "what": "import numpy, lightgbm (pandas and scikit-learn blocked)",
        "cold_s": report.spread([r["cold_s"] for r in floor]),
        "import_s": report.spread([r["import_s"] for r in floor])["median"],
        "process_wall_s": report.spread([r["process_s"] for r in floor]),
        "rss_peak_mib": report.spread([r["rss_peak_mib"] for r in floor]),
    }
    api_cold = cold["api"]["cold_s"]["median"]
    cold["speedup"] = report.ratio(cold["reference"]["cold_s"]["median"], api_cold)
    cold["api_vs_floor"] = report.ratio(api_cold, cold["floor"]["cold_s"]["median"])
    warm: dict[str, Any] = {
        target: {size: report.latency(times) for size, times in result["warm_s"].items()}
        for target, result in runs["warm"].items()
    }
    warm["speedup"] = {
        size: {
            p: report.ratio(warm["reference"][size][f"{p}_ms"], warm["api"][size][f"{p}_ms"]) for p in ("p50", "p99")
        }
        for size in warm["api"]
    }
    api_warm = runs["warm"]["api"]
    warm["bare"] = {size: report.latency(times) for size, times in api_warm["bare_s"].items()}
    warm["api_vs_bare"] = {
        size: report.ratio(warm["api"][size]["p50_ms"], warm["bare"][size]["p50_ms"]) for size in warm["bare"]
    }
    warm["explained"] = {"1": report.latency(api_warm["explained_s"])}
    peak = {
        target: max([r["rss_peak_mib"] for r in runs["cold"][target]] + [runs["warm"][target]["rss_peak_mib"]])
        for target in ("api", "reference")
    }
    rss = {
        "api_mib": peak["api"],
        "reference_mib": peak["reference"],
        "ratio": report.ratio(peak["reference"], peak["api"]),
    }
    return {"cold_start": cold, "warm_latency": warm, "peak_rss": rss}


def batch_runs(children: Children, server: MotoServer, model: Model, plan: Plan, cache: Path) -> list[dict[str, Any]]:
    """Each CSV size scored S3->S3 by the batch code in a fresh process, then by the bare Booster."""
    from chalicelib.predictor import SINGLE_THREAD_ROWS

    client = server.client()
    warmup_csv, _ = batch_input(model, cache, BATCH_WARMUP_ROWS)
    warmup_key = f"{BATCH_INPUT_PREFIX}warmup-{BATCH_WARMUP_ROWS}.csv"
    client.upload_file(str(warmup_csv), BUCKET, warmup_key)
    results = []
    for rows in plan.batch_rows:
        csv, npy = batch_input(model, cache, rows)
        key = f"{BATCH_INPUT_PREFIX}bench-{rows}.csv"
        client.upload_file(str(csv), BUCKET, key)
        spec = {
            "rows": rows,
            "warmup_event": s3_put_event(BUCKET, warmup_key, size=warmup_csv.stat().st_size),
            "event": s3_put_event(BUCKET, key, size=csv.stat().st_size),
            "local_npy": str(npy),
            "num_threads": 1 if rows < SINGLE_THREAD_ROWS else 0,
        }
        result = children.run("batch", spec)
        scored = result["objects"]
        if [(o["status"], o["rows"], o["rows_with_errors"]) for o in scored] != [("scored", rows, 0)]:
            raise RuntimeError(f"batch of {rows:,} rows did not score cleanly: {scored}")
        result["csv_mib"] = csv.stat().st_size / 2**20
        result["e2e_rows_per_s"] = rows / result["e2e_s"]
        result["raw_rows_per_s"] = rows / result["raw_predict_s"]
        result["e2e_vs_raw"] = result["e2e_rows_per_s"] / result["raw_rows_per_s"]
        results.append(result)
        log(f"batch {rows:,} rows: {result['e2e_rows_per_s']:,.0f} rows/s e2e, {result['raw_rows_per_s']:,.0f} raw")
    return results


def batch_environment() -> dict[str, str]:
    """The batch function's settings: uploads and predictions in the bench bucket."""
    return {
        "INPUT_BUCKET": BUCKET,
        "INPUT_PREFIX": BATCH_INPUT_PREFIX,
        "INPUT_SUFFIX": ".csv",
        "OUTPUT_BUCKET": BUCKET,
        "OUTPUT_PREFIX": BATCH_OUTPUT_PREFIX,
    }


def model_facts(model: Model) -> dict[str, Any]:
    manifest = json.loads((model.artifacts_dir / model.version / "manifest.json").read_text())
    return {
        "zipcodes": model.zipcodes,
        "max_rounds": model.rounds,
        "trees": model.trees,
        "num_leaves": manifest["params"]["num_leaves"],
        "train_rows": model.train_rows,
        "feature_rows": len(model.features),
        "model_file_mib": model.model_file.stat().st_size / 2**20,
        "version": model.version,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = plan_of(args)
    cache = args.cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    log(f"plan: {plan}")
    load_before = os.getloadavg()[0]
    model = trained_model(cache, plan.zipcodes, plan.rounds, log)
    log(f"model {model.version}: {model.trees} trees, {model.train_rows:,} training rows")
    for rows in plan.batch_rows:
        batch_input(model, cache, rows)
    with MotoServer() as server, tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        uris = stage_s3(server, model, plan, cache)
        tmp = Path(workdir) / "tmp"  # the reference's /tmp, this run's own
        tmp.mkdir()
        env = server.child_env(dict(os.environ)) | uris | batch_environment()
        env |= {"PYTHONPATH": str(REPO_ROOT), "TMPDIR": str(tmp)}
        children = Children(env, Path(workdir))
        log("S3 staged; measuring the handlers")
        handlers = summarize_handlers(handler_runs(children, plan))
        batches = batch_runs(children, server, model, plan, cache)
    results = {
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "machine": machine() | {"loadavg_1min_at_start": load_before},
        "plan": plan.__dict__,
        "model": model_facts(model),
        **handlers,
        "batch": batches,
        "sizes": deployment_sizes(args.layers_dir, REPO_ROOT),
    }
    results["targets"] = [t.to_dict() for t in report.targets(results)]
    print(report.format_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
