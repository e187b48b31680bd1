"""What runs inside a fresh interpreter: one cold start (then warm requests), the floor, or one batch.

    python -m bench.child api|reference|floor|batch SPEC.json RESULT.json

Only the standard library is imported before the measured code. For `api` and `floor`
pandas and scikit-learn are blocked first: the API function's layer has neither, and
lightgbm imports both whenever it can. `floor` imports numpy and lightgbm and nothing
else: the bare cost a numpy-and-lightgbm API would pay before its first line of work.
Times come from this process's own clock, from its first line; peak RSS from VmHWM.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import importlib  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from array import array  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from testkit.events import LambdaContext, api_event  # noqa: E402

BLOCKED_ON_API = ("pandas", "sklearn")
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


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


def block_api_absentees() -> None:
    """Make pandas and scikit-learn unimportable, as they are on the API function."""
    for name in BLOCKED_ON_API:
        sys.modules[name] = None  # type: ignore[assignment]


def loaded(names: list[str]) -> list[str]:
    """Which of `names` this process has imported."""
    return [name for name in names if sys.modules.get(name) is not None]


def timed(call: Callable[[], object], warmup: int, repeats: int) -> list[float]:
    """Seconds per call of `repeats` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return timings


def floor(spec: dict[str, Any]) -> dict[str, Any]:
    """Time `import numpy, lightgbm` alone, with pandas and scikit-learn blocked as on the API."""
    block_api_absentees()
    before_import = time.perf_counter()
    importlib.import_module("numpy")
    importlib.import_module("lightgbm")
    imported = time.perf_counter()
    return {
        "startup_s": before_import - STARTED,
        "import_s": imported - before_import,
        "cold_s": imported - STARTED,
        "rss_peak_mib": peak_rss_mib(),
        "heavy_modules": loaded(spec["heavy_modules"]),
    }


def cold_and_warm(target: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Import the handler's module, answer the first request, then time warm requests."""
    if target == "api":
        block_api_absentees()
    records = spec["records"]
    context = LambdaContext()
    before_import = time.perf_counter()
    if target == "api":
        handler: Handler = importlib.import_module("app").app
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
        "heavy_modules": loaded(spec["heavy_modules"]),
        "modules_loaded": sum(1 for m in sys.modules.values() if m is not None),
        "warm_s": {},
    }
    predictions: dict[str, list[float]] = {}
    for size in spec["warm_sizes"]:
        event = api_event(json.dumps({"records": cycled(records, size)}))
        reply = handler(event, context)
        predictions[str(size)] = json.loads(reply["body"]).get("predictions", [])
        if reply["statusCode"] != 200 or len(predictions[str(size)]) != size:
            raise RuntimeError(f"a {size}-record request failed: {reply['body'][:500]}")
        warm = timed(partial(handler, event, context), spec["warmup_requests"], spec["warm_requests"])
        result["warm_s"][str(size)] = warm
    if target == "api" and spec["warm_sizes"]:
        result |= bare_and_explained(handler, context, records, predictions, spec)
    result["rss_peak_mib"] = peak_rss_mib()
    return result


def cycled(records: list[Any], size: int) -> list[Any]:
    return [records[i % len(records)] for i in range(size)]


def bare_and_explained(
    handler: Handler, context: Any, records: list[Any], predictions: dict[str, list[float]], spec: dict[str, Any]
) -> dict[str, Any]:
    """The same rows through the loaded booster alone, and a 1-record explained request, timed alike.

    The bare calls must give the API's predictions bit for bit: otherwise they would time
    other work than the requests did, and the ratio would mean nothing.
    """
    from chalicelib.contract import FEATURE_NAMES

    booster = importlib.import_module("app").model.get().booster
    width = len(FEATURE_NAMES)
    bare: dict[str, list[float]] = {}
    for size in spec["warm_sizes"]:
        rows = [[float(record[name]) for name in FEATURE_NAMES] for record in cycled(records, size)]
        if size == 1:
            row = rows[0]
            answer = [booster.predict_row(row)]
            call: Callable[[], object] = partial(booster.predict_row, row)
        else:
            flat = array("d", [value for row in rows for value in row])
            answer = list(booster.predict_matrix(flat, size, width, num_threads=1))
            call = partial(booster.predict_matrix, flat, size, width, num_threads=1)
        if answer != predictions[str(size)]:
            raise RuntimeError(f"bare predictions of {size} rows differ from the API's: {answer[:3]}")
        bare[str(size)] = timed(call, spec["warmup_requests"], spec["warm_requests"])
    event = api_event(json.dumps({"records": records[:1], "explain": True}))
    reply = handler(event, context)
    if reply["statusCode"] != 200 or len(json.loads(reply["body"]).get("explanations", [])) != 1:
        raise RuntimeError(f"the explained request failed: {reply['body'][:500]}")
    explained = timed(partial(handler, event, context), spec["warmup_requests"], spec["warm_requests"])
    return {"bare_s": bare, "explained_s": explained}


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
    if target == "batch":
        result = batch(spec)
    elif target == "floor":
        result = floor(spec)
    else:
        result = cold_and_warm(target, spec)
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
