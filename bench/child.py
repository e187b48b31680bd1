"""What runs inside a fresh interpreter: one cold start (then warm requests), or one batch.

    python -m bench.child api|reference|batch SPEC.json RESULT.json

Only the standard library is imported before the measured code, and for `api` pandas
and scikit-learn are blocked first: the API function's layer has neither, and lightgbm
imports both whenever it can. Times come from this process's own clock; peak RSS from
getrusage, which covers this process only.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import importlib  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from testkit.events import LambdaContext, api_event  # noqa: E402

BLOCKED_ON_API = ("pandas", "sklearn")


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent across
    fork and exec, so a child of a large bench process would report the parent's peak.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cold_and_warm(target: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Import the handler's module, answer the first request, then time warm requests."""
    if target == "api":
        for name in BLOCKED_ON_API:
            sys.modules[name] = None  # type: ignore[assignment]
    records = spec["records"]
    context = LambdaContext()
    before_import = time.perf_counter()
    if target == "api":
        handler = importlib.import_module("app").app
    else:
        handler = importlib.import_module("bench.tutorial_handler").lambda_handler
    imported = time.perf_counter()
    first = handler(api_event(json.dumps({"records": records})), context)
    answered = time.perf_counter()
    if first["statusCode"] != 200:
        raise RuntimeError(f"first request failed: {first['statusCode']} {first['body'][:500]}")
    result: dict[str, Any] = {
        "startup_s": before_import - STARTED,
        "import_s": imported - before_import,
        "first_request_s": answered - imported,
        "cold_s": answered - STARTED,
        "rss_after_first_mib": peak_rss_mib(),
        "pandas_loaded": sys.modules.get("pandas") is not None,
        "sklearn_loaded": sys.modules.get("sklearn") is not None,
        "modules_loaded": sum(1 for m in sys.modules.values() if m is not None),
        "warm_s": {},
    }
    for size in spec["warm_sizes"]:
        event = api_event(json.dumps({"records": [records[i % len(records)] for i in range(size)]}))
        reply = handler(event, context)
        if reply["statusCode"] != 200 or len(json.loads(reply["body"])["predictions"]) != size:
            raise RuntimeError(f"a {size}-record request failed: {reply['body'][:500]}")
        for _ in range(spec["warmup_requests"]):
            handler(event, context)
        timings = []
        for _ in range(spec["warm_requests"]):
            start = time.perf_counter()
            handler(event, context)
            timings.append(time.perf_counter() - start)
        result["warm_s"][str(size)] = timings
    result["rss_peak_mib"] = peak_rss_mib()
    return result


def batch(spec: dict[str, Any]) -> dict[str, Any]:
    """Score one S3 object through the batch handler's code, then the bare engine (C API) on its rows."""
    import boto3

    from chalicelib.batch.handler import score_s3_event
    from chalicelib.batch.settings import BatchSettings
    from chalicelib.predictor import LazyPredictor

    model = LazyPredictor.from_environment()
    predictor = model.get()
    settings = BatchSettings.from_environment()
    client = boto3.client("s3")
    start = time.perf_counter()
    score_s3_event(spec["warmup_event"], model, settings, s3_client=client)
    warmup_s = time.perf_counter() - start
    rss_loaded = peak_rss_mib()
    start = time.perf_counter()
    scored = score_s3_event(spec["event"], model, settings, s3_client=client)
    elapsed = time.perf_counter() - start
    result: dict[str, Any] = {
        "rows": spec["rows"],
        "e2e_s": elapsed,
        "warmup_s": warmup_s,
        "rss_before_mib": rss_loaded,
        "objects": [vars(o) for o in scored],
    }
    result["rss_peak_mib"] = peak_rss_mib()

    import numpy as np

    matrix = np.ascontiguousarray(np.load(spec["local_npy"]), dtype=np.float64)
    threads = spec["num_threads"]
    predictor.booster.predict_matrix(matrix[:1000], 1000, matrix.shape[1], num_threads=threads)
    start = time.perf_counter()
    predictor.booster.predict_matrix(matrix, len(matrix), matrix.shape[1], num_threads=threads)
    result["raw_predict_s"] = time.perf_counter() - start
    result["num_threads"] = spec["num_threads"]
    return result


def main() -> None:
    target, spec_path, result_path = sys.argv[1:4]
    spec = json.loads(Path(spec_path).read_text())
    result = batch(spec) if target == "batch" else cold_and_warm(target, spec)
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
