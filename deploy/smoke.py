"""Run the built layers the way Lambda will, before anything is deployed.

Why: a layer that imports in the dev venv can still fail on Lambda (a missing libgomp,
a package found only in site-packages, bytecode Python can't use on read-only /opt).
This lays out TMP/opt (layers), TMP/var/task (function zip) and TMP/var/runtime (the
runtime's boto3 & co.), then runs a bare `python3.12 -I -S` with Lambda's environment
and sys.path only. No venv site-packages are visible to it.

Usage: python -m deploy.smoke [--layers build/layers] [--app-dir .] [--function-zip ZIP]
                              [--records FILE] [--artifacts DIR] [--require-app]

The same file is also the child's entry point (`smoke.py --inner MODE ...`): it then
imports only the standard library before it sets sys.path. The parent (a developer tool,
never deployed) builds the events with testkit and hands them to the child as JSON, so
nothing outside the layers and the function zip is imported in the sandbox.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LAYERS = REPO_ROOT / "build" / "layers"
DEFAULT_RECORDS = REPO_ROOT / "examples" / "lab_request.json"
DEFAULT_ARTIFACTS = REPO_ROOT / "artifacts"
RESULT_PREFIX = "SMOKE_RESULT "
SPEC_FILE = "smoke-spec.json"

# Lambda's LD_LIBRARY_PATH; /var/... and /opt/... are rebased into the sandbox.
LAMBDA_LD_LIBRARY_PATH = (
    "/var/lang/lib",
    "/lib64",
    "/usr/lib64",
    "/var/runtime",
    "/var/runtime/lib",
    "/var/task",
    "/var/task/lib",
    "/opt/lib",
)
# What the python3.12 runtime itself provides (boto3 and its dependencies); copied from
# this venv into TMP/var/runtime. Deliberately nothing else: numpy & co. must come from
# the layers.
RUNTIME_PACKAGES = (
    "boto3",
    "botocore",
    "jmespath",
    "s3transfer",
    "urllib3",
    "dateutil",
    "six",
)
# Host-specific OpenBLAS settings that keep old OpenBLAS builds from crashing on some
# processors here; passed through unchanged, never set by us.
PASSTHROUGH_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
ELF_MACHINES = {62: "x86_64", 183: "aarch64"}


# ======================================================================================
# Child side: runs inside the sandbox, standard library only until sys.path is set.
# ======================================================================================


def _inner_setup(sandbox: Path) -> tuple[dict[str, list[str]], list[str]]:
    """Set Lambda's sys.path and record every source compile under /opt and /var/task.

    A "compile" audit event fires when importlib compiles source, i.e. when a pyc is
    missing or unusable: on read-only /opt (layers) and /var/task (function zip) that must
    never happen.
    """
    roots = {"opt": str(sandbox / "opt"), "task": str(sandbox / "var" / "task")}
    compiled: dict[str, list[str]] = {name: [] for name in roots}

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "compile" and len(args) > 1:
            for name, root in roots.items():
                if str(args[1]).startswith(root):
                    compiled[name].append(str(args[1]))

    sys.addaudithook(hook)
    stdlib = [p for p in sys.path if p and "site-packages" not in p]
    sys.path[:] = [
        str(sandbox / "var" / "task"),
        str(sandbox / "opt" / "python" / "lib" / "python3.12" / "site-packages"),
        str(sandbox / "opt" / "python"),
        *stdlib,
        str(sandbox / "var" / "runtime"),
    ]
    return compiled, stdlib


def _check_isolation(sandbox: Path, stdlib: list[str]) -> None:
    """Every loaded module comes from the sandbox or the standard library."""
    allowed = (str(sandbox), *stdlib)
    for name, module in list(sys.modules.items()):
        if name == "__main__":  # this very script
            continue
        path = getattr(module, "__file__", None)
        if path and not path.startswith(allowed):
            raise AssertionError(f"module {name} loaded from outside the sandbox: {path}")


def _mapped(name: str) -> list[str]:
    """Paths of every shared object whose path contains `name` mapped into this process."""
    with open("/proc/self/maps") as maps:
        return sorted({line.split()[-1] for line in maps if name in line})


def _peak_rss_mib() -> float:
    """The kernel's high-water mark of this process (VmHWM), as Lambda reports Max Memory Used."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def _check_libgomp(sandbox: Path) -> list[str]:
    """lib_lightgbm.so must have got the layer's libgomp, not the build host's."""
    gomp = _mapped("libgomp")
    expected = str(sandbox / "opt" / "lib")
    if not gomp or any(not p.startswith(expected) for p in gomp):
        raise AssertionError(f"libgomp not loaded from {expected}: {gomp}")
    return gomp


def _check_no_pandas() -> None:
    import importlib.util

    if "pandas" in sys.modules or importlib.util.find_spec("pandas") is not None:
        raise AssertionError("pandas is importable/imported in a model-layer-only function")
    if "sklearn" in sys.modules or importlib.util.find_spec("sklearn") is not None:
        raise AssertionError("scikit-learn is importable in a model-layer-only function")


def _context(fields: dict[str, Any]) -> Any:
    """Lambda's context object, rebuilt from the plain data the parent sent."""
    from types import SimpleNamespace

    remaining = fields["remaining_time_in_millis"]
    return SimpleNamespace(**fields, get_remaining_time_in_millis=lambda: remaining)


def _inner_layer(sandbox: Path) -> dict[str, Any]:
    """Model layer alone: import, train 200 random rows, predict (numpy and CSR)."""
    t0 = time.perf_counter()
    import lightgbm
    import numpy as np

    t_import = time.perf_counter() - t0
    import scipy.sparse

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = 2 * x[:, 0] + rng.normal(size=200)
    params = {"verbose": -1, "num_threads": 1, "min_data_in_leaf": 5}
    booster = lightgbm.train(params, lightgbm.Dataset(x, y), num_boost_round=20)
    reloaded = lightgbm.Booster(model_str=booster.model_to_string())
    dense = reloaded.predict(x[:5], num_threads=1)
    sparse = reloaded.predict(scipy.sparse.csr_matrix(x[:5]), num_threads=1)
    if not np.allclose(dense, sparse) or dense.shape != (5,):
        raise AssertionError(f"dense/sparse predictions differ: {dense} {sparse}")
    _check_no_pandas()
    return {
        "lightgbm_import_s": t_import,
        "total_s": time.perf_counter() - t0,
        "predictions": [float(v) for v in dense],
        "libgomp": _check_libgomp(sandbox),
        "scipy_modules": sorted(m for m in sys.modules if m.startswith("scipy.") and m.count(".") == 1),
    }


def _inner_import_lightgbm(sandbox: Path) -> dict[str, Any]:
    """Just the cold import, for the bytecode comparison."""
    t0 = time.perf_counter()
    import lightgbm  # noqa: F401

    return {"lightgbm_import_s": time.perf_counter() - t0}


def _inner_native(sandbox: Path) -> dict[str, Any]:
    """Native layer alone: lib_lightgbm.so loads by name (LD_LIBRARY_PATH) with the layer's libgomp."""
    import ctypes

    t0 = time.perf_counter()
    library = ctypes.CDLL("lib_lightgbm.so")
    t_load = time.perf_counter() - t0
    for symbol in ("LGBM_BoosterLoadModelFromString", "LGBM_BoosterPredictForMatSingleRowFast", "LGBM_GetLastError"):
        getattr(library, symbol)  # AttributeError names a missing one
    expected = str(sandbox / "opt" / "lib")
    lib = _mapped("lib_lightgbm")
    if not lib or any(not p.startswith(expected) for p in lib):
        raise AssertionError(f"lib_lightgbm.so not loaded from {expected}: {lib}")
    return {"load_s": t_load, "lib_lightgbm": lib, "libgomp": _check_libgomp(sandbox)}


def _inner_api(sandbox: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """api_handler: import app, answer POST /predict_price, /health, /openapi.json; never load pandas.

    Reports which of the heavy modules answering them loaded, and the peak RSS.
    """
    records, event, context = spec["records"], spec["predict_event"], _context(spec["context"])
    t0 = time.perf_counter()
    import app as app_module

    t_import = time.perf_counter() - t0
    response = app_module.app(event, context)
    t_first = time.perf_counter() - t0
    t1 = time.perf_counter()
    app_module.app(event, context)
    t_warm = time.perf_counter() - t1
    status = response.get("statusCode")
    body = json.loads(response.get("body") or "null")
    if status != 200:
        raise AssertionError(f"status {status}: {body}")
    predictions = body.get("predictions") if isinstance(body, dict) else None
    if not isinstance(predictions, list) or len(predictions) != len(records):
        raise AssertionError(f"expected {len(records)} predictions in body['predictions']: {body}")
    for name, other in spec["other_events"].items():
        reply = app_module.app(other, context)
        if reply.get("statusCode") != 200:
            raise AssertionError(f"{name}: status {reply.get('statusCode')}: {reply.get('body', '')[:500]}")
    _check_no_pandas()
    result: dict[str, Any] = {
        "import_s": t_import,
        "cold_start_s": t_first,
        "warm_s": t_warm,
        "status": status,
        "predictions": predictions,
        "answered": ["predict_price", *spec["other_events"]],
        "heavy_modules_loaded": [m for m in spec["heavy_modules"] if m in sys.modules],
        "peak_rss_mib": _peak_rss_mib(),
    }
    if _mapped("lib_lightgbm"):
        result["libgomp"] = _check_libgomp(sandbox)
    return result


def _inner_batch(sandbox: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """score_uploaded_csv: both layers; pandas, chalicelib.batch and botocore import."""
    import importlib
    import importlib.util
    import io

    t0 = time.perf_counter()
    import app  # noqa: F401

    t_app = time.perf_counter() - t0
    notes: list[str] = []
    if importlib.util.find_spec("chalicelib.batch") is not None:
        importlib.import_module("chalicelib.batch.handler")
    else:
        notes.append("chalicelib.batch does not exist: only pandas checked")
    t_batch = time.perf_counter() - t0
    import botocore.session
    import dateutil
    import numpy
    import pandas

    opt = str(sandbox / "opt" / "python")
    for module in (pandas, numpy, dateutil):
        if not str(module.__file__).startswith(opt):
            raise AssertionError(f"{module.__name__} not from the layers: {module.__file__}")
    botocore.session.get_session().get_config_variable("region")  # layer dateutil vs botocore
    records = spec["records"]
    csv = pandas.DataFrame.from_records(records).to_csv(index=False)
    frame = pandas.read_csv(io.StringIO(csv))
    if frame.shape[0] != len(records):
        raise AssertionError(f"pandas round trip lost rows: {frame.shape}")
    return {
        "import_app_s": t_app,
        "import_app_and_batch_s": t_batch,
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
        "frame_shape": list(frame.shape),
        "notes": notes,
    }


def inner_main(argv: list[str]) -> int:
    """Child entry point: `smoke.py --inner MODE SANDBOX`; the parent's spec is SANDBOX/smoke-spec.json."""
    mode, sandbox = argv[0], Path(argv[1])
    compiled, stdlib = _inner_setup(sandbox)
    spec_path = sandbox / SPEC_FILE
    spec: dict[str, Any] = json.loads(spec_path.read_text()) if spec_path.is_file() else {}
    if mode == "layer":
        result = _inner_layer(sandbox)
    elif mode == "import-lightgbm":
        result = _inner_import_lightgbm(sandbox)
    elif mode == "native":
        result = _inner_native(sandbox)
    elif mode == "api":
        result = _inner_api(sandbox, spec)
    elif mode == "batch":
        result = _inner_batch(sandbox, spec)
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    _check_isolation(sandbox, stdlib)
    result["compiled_under_opt"] = len(compiled["opt"])
    result["compiled_under_task"] = len(compiled["task"])
    result["compiled_examples"] = (compiled["opt"] + compiled["task"])[:3]
    result["sys_path"] = sys.path
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


# ======================================================================================
# Parent side.
# ======================================================================================


class SmokeFailure(Exception):
    """The layers or the app would not work on Lambda, or the smoke test could not run them."""


def log(message: str) -> None:
    print(f"[smoke] {message}", file=sys.stderr, flush=True)


def base_python() -> str:
    """The interpreter behind this venv: no site-packages of ours can leak in."""
    return str(getattr(sys, "_base_executable", None) or sys.executable)


def layer_machine(model_zip: Path) -> str:
    """The ELF machine lib_lightgbm.so was built for (the zip's own bytes, no tools)."""
    with zipfile.ZipFile(model_zip) as zf:
        header = zf.read("python/lightgbm/lib/lib_lightgbm.so")[:20]
    return ELF_MACHINES.get(int.from_bytes(header[18:20], "little"), "unknown")


def extract(zip_path: Path, dest: Path) -> None:
    """Unzip keeping the modes Lambda keeps (zipfile drops them)."""
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = Path(zf.extract(info, dest))
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                target.chmod(mode)


def copy_runtime(dest: Path) -> None:
    """Mimic the runtime's own boto3 & co. in TMP/var/runtime (copies, with pycs)."""
    import importlib.util

    dest.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise SmokeFailure(f"{name} is not installed in this venv; the runtime stand-in needs it")
        origin = Path(spec.origin)
        if spec.submodule_search_locations:
            shutil.copytree(origin.parent, dest / name, dirs_exist_ok=True)
        else:
            shutil.copy2(origin, dest / origin.name)


def make_sandbox(
    root: Path,
    layer_zips: list[Path],
    function_zip: Path | None,
    runtime: Path | None,
    with_pycache: bool = True,
) -> Path:
    """TMP/opt from the layers, TMP/var/task from the function zip, TMP/var/runtime.

    The runtime copy is made once per smoke run and linked into each sandbox.
    """
    if root.exists():
        shutil.rmtree(root)
    for layer in layer_zips:
        extract(layer, root / "opt")
    (root / "var" / "task").mkdir(parents=True)
    if function_zip is not None:
        extract(function_zip, root / "var" / "task")
    if runtime is not None:
        (root / "var" / "runtime").symlink_to(runtime, target_is_directory=True)
    else:
        (root / "var" / "runtime").mkdir()
    if not with_pycache:
        for cache in sorted((root / "opt").rglob("__pycache__"), reverse=True):
            shutil.rmtree(cache)
    return root


def lambda_env(sandbox: Path, function_name: str, artifacts: str) -> dict[str, str]:
    """A cleared environment holding only what Lambda sets (plus our app's settings)."""

    def rebase(path: str) -> str:
        return str(sandbox) + path if path.startswith(("/var", "/opt")) else path

    env = {
        "LD_LIBRARY_PATH": ":".join(rebase(p) for p in LAMBDA_LD_LIBRARY_PATH),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(sandbox / "var" / "task"),
        "LAMBDA_RUNTIME_DIR": str(sandbox / "var" / "runtime"),
        "PYTHONPATH": str(sandbox / "var" / "runtime"),  # set by Lambda; -I ignores it
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "ARTIFACTS_URI": artifacts,
        "MODEL_VERSION": "LATEST",
    }
    env.update({k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ})
    return env


def run_inner(
    python: str,
    sandbox: Path,
    mode: str,
    env: dict[str, str],
    spec: dict[str, Any] | None = None,
    no_write_bytecode: bool = False,
) -> dict[str, Any]:
    """Run one child; its assertions fail the smoke test with their output."""
    if spec is not None:
        (sandbox / SPEC_FILE).write_text(json.dumps(spec))
    cmd = [
        python,
        "-I",
        "-S",
        *(["-B"] if no_write_bytecode else []),
        str(Path(__file__).resolve()),
    ]
    cmd += ["--inner", mode, str(sandbox)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=sandbox)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise SmokeFailure(f"in {mode} (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX) :])
    if mode != "import-lightgbm" and (result["compiled_under_opt"] or result["compiled_under_task"]):
        raise SmokeFailure(f"in {mode}: source compiled under /opt or /var/task: {result['compiled_examples']}")
    return result


def measure_bytecode(python: str, work: Path, model_zip: Path, repeats: int) -> dict[str, float]:
    """Cold `import lightgbm` from the layer with and without its __pycache__.

    -B stands in for read-only /opt (root ignores file modes): nothing gets written, so
    every run is cold.
    """
    medians: dict[str, float] = {}
    for label, with_pycache in (("with_pycache", True), ("without_pycache", False)):
        sandbox = make_sandbox(work / label, [model_zip], None, None, with_pycache=with_pycache)
        env = lambda_env(sandbox, "bytecode-check", "unused")
        times = []
        for _ in range(repeats):
            result = run_inner(python, sandbox, "import-lightgbm", env, no_write_bytecode=True)
            times.append(result["lightgbm_import_s"])
            compiled = result["compiled_under_opt"]
            if with_pycache and compiled:
                raise SmokeFailure(f"layer bytecode not used: {result['compiled_examples']}")
            if not with_pycache and not compiled:
                raise SmokeFailure("the compile audit hook saw nothing without pycs")
        medians[label] = statistics.median(times)
        shutil.rmtree(sandbox)
    if medians["with_pycache"] >= medians["without_pycache"]:
        raise SmokeFailure(f"bytecode gives no speed-up: {medians}")
    return medians


def app_spec(records_path: Path) -> dict[str, Any]:
    """What the app's children get: records, API Gateway events and context (from testkit)."""
    from deploy.specs import HEAVY_MODULES
    from testkit.events import LambdaContext, api_event
    from testkit.lab import lab_records

    records = lab_records(records_path)
    return {
        "records": records,
        "predict_event": api_event(json.dumps({"records": records})),
        "other_events": {
            "health": api_event(None, method="GET", path="/health"),
            "openapi": api_event(None, method="GET", path="/openapi.json"),
        },
        "heavy_modules": list(HEAVY_MODULES),
        "context": LambdaContext(log_stream_name="smoke").to_dict(),
    }


def resolve_function_zip(args: argparse.Namespace, work: Path) -> Path | None:
    """--function-zip as given, else a fresh zip of --app-dir, else None (no app yet)."""
    if args.function_zip:
        return Path(args.function_zip).resolve()
    from deploy.layers import build_function_zip

    return build_function_zip(Path(args.app_dir).resolve(), work / "function.zip")


def api_function_facts(function_zip: Path, zips: dict[str, Path], api: dict[str, Any]) -> dict[str, Any]:
    """The deployed API function's unzipped size (function zip + its own layers) and what it loaded."""
    from deploy.layers import zip_unzipped_size
    from deploy.specs import API_PEAK_RSS_BYTES, FUNCTIONS, MIB

    (spec,) = (fn for fn in FUNCTIONS if fn.name == "api_handler")
    parts = {"function": zip_unzipped_size(function_zip)} | {
        f"{name}-layer": zip_unzipped_size(zips[name]) for name in spec.layers
    }
    return {
        "parts_mib": {name: size / MIB for name, size in parts.items()},
        "unzipped_mib": sum(parts.values()) / MIB,
        "budget_mib": spec.budget_bytes / MIB,
        "peak_rss_mib": api["peak_rss_mib"],
        "peak_rss_budget_mib": API_PEAK_RSS_BYTES / MIB,
        "heavy_modules_loaded": api["heavy_modules_loaded"],
    }


def lean_problems(facts: dict[str, Any]) -> list[str]:
    """What keeps the API function from the issue-10 targets (each one fails the smoke test)."""
    problems = []
    if facts["heavy_modules_loaded"]:
        problems.append(f"answering {facts['answered']} imported {facts['heavy_modules_loaded']}")
    if facts["peak_rss_mib"] > facts["peak_rss_budget_mib"]:
        problems.append(f"peak RSS {facts['peak_rss_mib']:.1f} MiB > {facts['peak_rss_budget_mib']:.0f} MiB")
    if facts["unzipped_mib"] > facts["budget_mib"]:
        problems.append(f"unzipped {facts['unzipped_mib']:.1f} MiB > {facts['budget_mib']:.0f} MiB")
    return problems


def smoke(args: argparse.Namespace) -> dict[str, Any]:
    """All smoke phases; raises SmokeFailure with a clear message on any failure."""
    from deploy.specs import FUNCTIONS, LAYERS

    layers = Path(args.layers).resolve()
    zips = {spec.name: layers / spec.zip_name for spec in LAYERS}
    for zip_path in zips.values():
        if not zip_path.is_file():
            raise SmokeFailure(f"{zip_path} missing: run python -m deploy.layers first")
    model_zip = zips["model"]
    machine = layer_machine(model_zip)
    if machine != platform.machine():
        raise SmokeFailure(f"layers are for {machine}; this host is {platform.machine()}: cannot run them here")
    python = args.python or base_python()
    report: dict[str, Any] = {"python": python}
    with tempfile.TemporaryDirectory(prefix="house-prices-smoke-") as tmp:
        work = Path(tmp)
        log("model layer alone: import lightgbm, train 200 rows, predict")
        runtime = work / "runtime"
        copy_runtime(runtime)
        sandbox = make_sandbox(work / "layer", [model_zip], None, runtime)
        report["layer"] = run_inner(python, sandbox, "layer", lambda_env(sandbox, "layer", "unused"))
        shutil.rmtree(sandbox)

        log("native layer alone: lib_lightgbm.so by name, with the layer's libgomp")
        sandbox = make_sandbox(work / "native", [zips["native"]], None, runtime)
        report["native"] = run_inner(python, sandbox, "native", lambda_env(sandbox, "native", "unused"))
        shutil.rmtree(sandbox)

        if args.bytecode_repeats > 0:
            log("cold import of lightgbm with and without the layer's bytecode")
            report["bytecode"] = measure_bytecode(python, work, model_zip, args.bytecode_repeats)

        function_zip = resolve_function_zip(args, work)
        if function_zip is None:
            if args.require_app:
                raise SmokeFailure("no app.py and no --function-zip, but --require-app")
            report["app"] = "skipped: app.py does not exist yet"
            return report
        artifacts = args.artifacts
        if not artifacts.startswith("s3://"):
            artifacts = str(Path(artifacts).resolve())
            if not Path(artifacts).is_dir():
                raise SmokeFailure(f"artifacts folder {artifacts} missing (train a model first)")
        spec = app_spec(Path(args.records).resolve())

        (api_spec,) = (fn for fn in FUNCTIONS if fn.name == "api_handler")
        api_layers = list(api_spec.layers)
        log(f"api_handler: function zip + {' + '.join(api_layers)} layers: /predict_price, /health, /openapi.json")
        sandbox = make_sandbox(work / "api", [zips[name] for name in api_layers], function_zip, runtime)
        env = lambda_env(sandbox, "api_handler", artifacts)
        report["api"] = run_inner(python, sandbox, "api", env, spec)
        report["api"]["layers"] = api_layers
        shutil.rmtree(sandbox)
        facts = api_function_facts(function_zip, zips, report["api"]) | {"answered": report["api"]["answered"]}
        facts["lean_problems"] = lean_problems(facts)
        report["api_function"] = facts
        if facts["lean_problems"]:
            raise SmokeFailure("the API function is not lean: " + "; ".join(facts["lean_problems"]))

        log("score_uploaded_csv: function zip + model layer + pandas layer")
        sandbox = make_sandbox(work / "batch", [model_zip, zips["pandas"]], function_zip, runtime)
        env = lambda_env(sandbox, "score_uploaded_csv", artifacts)
        report["batch"] = run_inner(python, sandbox, "batch", env, spec)
    return report


def print_report(report: dict[str, Any]) -> None:
    """Human-readable summary on stdout."""
    layer = report["layer"]
    print(f"interpreter: {report['python']} (-I -S, Lambda sys.path and environment)")
    print(f"sys.path: {layer['sys_path']}")
    print(
        f"model layer: import lightgbm {layer['lightgbm_import_s']:.3f} s, import+train+predict "
        f"{layer['total_s']:.3f} s, libgomp {layer['libgomp']}"
    )
    print(f"  scipy subpackages loaded: {layer['scipy_modules']}")
    native = report["native"]
    print(f"native layer: lib_lightgbm.so loaded in {native['load_s']:.3f} s from {native['lib_lightgbm']}")
    print(f"  libgomp {native['libgomp']}")
    if "bytecode" in report:
        b = report["bytecode"]
        print(
            f"cold import lightgbm (median): with layer pycs {b['with_pycache']:.3f} s, "
            f"without {b['without_pycache']:.3f} s"
        )
    if isinstance(report.get("app"), str):
        print(f"app: {report['app']}")
        return
    api = report["api"]
    print(
        f"api_handler ({' + '.join(api['layers'])} layers): import app {api['import_s']:.3f} s, cold start "
        f"(import + first response) {api['cold_start_s']:.3f} s, warm {api['warm_s'] * 1000:.1f} ms, "
        f"status {api['status']}, compiled under /var/task {api['compiled_under_task']}"
    )
    print(f"  predictions: {api['predictions']}")
    facts = report["api_function"]
    parts = " + ".join(f"{name} {size:.1f}" for name, size in facts["parts_mib"].items())
    print(
        f"  API function unzipped {facts['unzipped_mib']:.1f} MiB ({parts}; budget {facts['budget_mib']:.0f}), "
        f"peak RSS {facts['peak_rss_mib']:.1f} MiB (lean target {facts['peak_rss_budget_mib']:.0f})"
    )
    print(f"  heavy modules loaded answering {facts['answered']}: {facts['heavy_modules_loaded']} (required: none)")
    batch = report["batch"]
    print(
        f"score_uploaded_csv: import app {batch['import_app_s']:.3f} s, + chalicelib.batch "
        f"{batch['import_app_and_batch_s']:.3f} s, pandas {batch['pandas']}, numpy {batch['numpy']}"
    )
    for note in batch["notes"]:
        print(f"  note: {note}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m deploy.smoke", description=__doc__.split("\n")[0])
    parser.add_argument("--layers", default=str(DEFAULT_LAYERS))
    parser.add_argument("--app-dir", default=str(REPO_ROOT), help="holds app.py and chalicelib/")
    parser.add_argument("--function-zip", help="use this zip (e.g. chalice's deployment.zip)")
    parser.add_argument("--records", default=str(DEFAULT_RECORDS), help='a request body {"records": [...]}')
    parser.add_argument(
        "--artifacts",
        default=str(DEFAULT_ARTIFACTS),
        help="folder or s3://bucket/prefix",
    )
    parser.add_argument("--python", help="Python 3.12 interpreter (default: this venv's base)")
    parser.add_argument("--bytecode-repeats", type=int, default=3, help="0 skips the comparison")
    parser.add_argument(
        "--require-app",
        action="store_true",
        help="fail instead of skipping without app.py",
    )
    parser.add_argument("--json", action="store_true", help="print the raw report as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from deploy.bytecode import BytecodeError

    args = parse_args(argv)
    try:
        report = smoke(args)
    except (SmokeFailure, BytecodeError) as failure:
        print(f"SMOKE FAILED: {failure}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else "", end="")
    print_report(report)
    print("SMOKE OK")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--inner":
        sys.exit(inner_main(sys.argv[2:]))
    sys.exit(main())
