"""The Lambda layer build and its smoke test (marked `layers`: slower, uses the wheel cache).

Why here and not only in `make layers`: a layer that breaks on Lambda (missing libgomp,
pandas reaching the API function, bytecode Python can't use) must fail CI, not a deploy.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deploy import layers, smoke, specs

pytestmark = pytest.mark.layers

REPO_ROOT = Path(__file__).resolve().parent.parent
WHEEL_CACHE = Path(os.environ.get("HOUSE_PRICES_WHEEL_CACHE", layers.DEFAULT_WHEEL_CACHE))


def run_module(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One x86_64 build for the whole module, through the real command line."""
    out = tmp_path_factory.mktemp("layers")
    proc = run_module("deploy.layers", "--out", str(out), "--wheel-cache", str(WHEEL_CACHE))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc.stdout


def names(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as zf:
        return zf.namelist()


def test_build_prints_size_table_and_passes(built: tuple[Path, str]) -> None:
    out, stdout = built
    assert "api_handler total" in stdout
    assert "score_uploaded_csv total" in stdout
    assert "ten largest files" in stdout
    assert f"OK: layers for x86_64 in {out}" in stdout
    for name in ("model-layer.zip", "pandas-layer.zip", "native-layer.zip"):
        size = (out / name).stat().st_size
        assert 0 < size <= specs.MAX_ZIP_BYTES


def test_zips_have_python_root(built: tuple[Path, str]) -> None:
    out, _ = built
    for name in ("model-layer.zip", "pandas-layer.zip"):
        entries = names(out / name)
        assert entries
        assert all(e.startswith(("python/", "lib/")) for e in entries), name
        assert any(e.startswith("python/") for e in entries)


def test_model_layer_contents(built: tuple[Path, str]) -> None:
    out, _ = built
    entries = names(out / "model-layer.zip")
    top = {e.split("/")[1] for e in entries if e.startswith("python/")}
    assert {"lightgbm", "numpy", "scipy", "narwhals"} <= top
    assert not {"pandas", "sklearn", "scikit_learn.libs", "scipy.libs"} & top
    assert not any(e.startswith("python/scikit_learn") for e in entries)
    assert "lib/libgomp.so.1" in entries
    assert not any("/tests/" in e for e in entries)
    assert not any(e.endswith(".pyi") for e in entries)
    # the scipy keep-list: sparse without linalg/csgraph, no stats/optimize/...
    assert "python/scipy/sparse/__init__.py" in entries
    assert not any(e.startswith(("python/scipy/stats/", "python/scipy/sparse/linalg/")) for e in entries)


def test_native_layer_is_lib_lightgbm_and_libgomp_only(built: tuple[Path, str]) -> None:
    """The API function's only layer: LightGBM's C library from the pinned wheel, and its libgomp."""
    out, _ = built
    with zipfile.ZipFile(out / "native-layer.zip") as zf:
        infos = {info.filename: info for info in zf.infolist()}
        library = zf.read("lib/lib_lightgbm.so")
    assert set(infos) == {"lib/lib_lightgbm.so", "lib/libgomp.so.1"}
    assert all((info.external_attr >> 16) & 0o777 == 0o755 for info in infos.values())
    lightgbm_pin = layers.read_pins(specs.REQUIREMENTS_DIR / "layer-model.txt")["lightgbm"]
    wheel = next(WHEEL_CACHE.glob(f"lightgbm-{lightgbm_pin}-*x86_64*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        assert library == zf.read("lightgbm/lib/lib_lightgbm.so")


def test_pandas_layer_has_no_numpy(built: tuple[Path, str]) -> None:
    out, _ = built
    top = {e.split("/")[1] for e in names(out / "pandas-layer.zip")}
    assert {"pandas", "dateutil", "tzdata", "six.py"} <= top
    assert not {"numpy", "numpy.libs", "scipy", "lightgbm", "sklearn"} & top


def test_bytecode_is_312_unchecked_hash(built: tuple[Path, str]) -> None:
    out, _ = built
    for name, module in (
        ("model-layer.zip", "lightgbm/basic"),
        ("pandas-layer.zip", "pandas/core/frame"),
    ):
        with zipfile.ZipFile(out / name) as zf:
            folder, stem = module.rsplit("/", 1)
            pyc = zf.read(f"python/{folder}/__pycache__/{stem}.cpython-312.pyc")
            pycs = [e for e in zf.namelist() if e.endswith(".pyc")]
        assert pyc[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, unchecked
        assert pycs and all(".cpython-312.pyc" in e for e in pycs)


def test_elf_check_catches_missing_libgomp_and_new_glibc(
    built: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks that passed above must be able to fail."""
    out, _ = built
    with zipfile.ZipFile(out / "model-layer.zip") as zf:
        zf.extractall(tmp_path)
    arch = specs.ARCHES["x86_64"]
    clean = layers.Problem()
    layers.check_elf(tmp_path, arch, clean)
    assert not clean, clean.messages

    (tmp_path / "lib" / "libgomp.so.1").unlink()
    missing = layers.Problem()
    layers.check_elf(tmp_path, arch, missing)
    assert any("lib_lightgbm.so: needs libgomp.so.1" in m for m in missing.messages)

    monkeypatch.setitem(specs.VERSION_CEILINGS, "GLIBC", (2, 17))
    too_new = layers.Problem()
    layers.check_elf(tmp_path, arch, too_new)
    assert any("GLIBC_2.2" in m or "GLIBC_2.1" in m or "Lambda AL2023 is older" in m for m in too_new.messages)

    wrong_arch = layers.Problem()
    layers.check_elf(tmp_path, specs.ARCHES["arm64"], wrong_arch)
    assert any("ELF machine" in m for m in wrong_arch.messages)


def test_budget_check_fails_over_budget() -> None:
    mib = specs.MIB
    ok = layers.Problem()
    sizes = {"model-layer": 90 * mib, "pandas-layer": 40 * mib, "native-layer": 10 * mib, "function": 1 * mib}
    layers.size_report(sizes, {}, ok)
    assert not ok, ok.messages
    over = layers.Problem()
    layers.size_report(sizes | {"native-layer": 24 * mib, "function": 2 * mib}, {}, over)
    assert [m for m in over.messages if m.startswith("api_handler") and "budget 25 MiB" in m]
    assert not [m for m in over.messages if m.startswith("score_uploaded_csv")]
    batch_over = layers.Problem()
    layers.size_report({"model-layer": 90 * mib, "pandas-layer": 95 * mib, "native-layer": 9 * mib}, {}, batch_over)
    assert [m for m in batch_over.messages if m.startswith("score_uploaded_csv")]
    zipped_over = layers.Problem()
    sizes = {"model-layer": 60 * mib, "pandas-layer": 10 * mib, "native-layer": 9 * mib}
    layers.size_report(sizes, {"model-layer": 51 * mib, "pandas-layer": 3 * mib}, zipped_over)
    assert [m for m in zipped_over.messages if m.startswith("model-layer: zipped")]


def test_incomplete_pins_are_rejected(built: tuple[Path, str], tmp_path: Path) -> None:
    """--no-deps is only safe because pip's resolver must agree with the pins."""
    model = specs.LAYERS[0]
    lines = model.requirements.read_text().splitlines()
    bad = tmp_path / "layer-model.txt"
    bad.write_text("\n".join(line for line in lines if not line.startswith("narwhals")) + "\n")
    broken = specs.LayerSpec("model", bad, model.forbidden_top_level, with_libgomp=True)
    with pytest.raises(layers.LayerBuildError, match="narwhals"):
        layers.verify_pins_closed(WHEEL_CACHE, specs.ARCHES["x86_64"], (broken, specs.LAYERS[1]))


def test_arm64_build_passes_checks(tmp_path: Path) -> None:
    proc = run_module(
        "deploy.layers",
        "--arch",
        "arm64",
        "--out",
        str(tmp_path),
        "--wheel-cache",
        str(WHEEL_CACHE),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entries = names(tmp_path / "model-layer.zip")
    with zipfile.ZipFile(tmp_path / "model-layer.zip") as zf:
        header = zf.read("python/lightgbm/lib/lib_lightgbm.so")[:20]
    assert int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64
    assert "lib/libgomp.so.1" in entries


def test_smoke_layers_without_app(built: tuple[Path, str], tmp_path: Path) -> None:
    """Layer-only smoke: lightgbm from the layer, its libgomp, its bytecode, no pandas."""
    out, _ = built
    empty_app_dir = tmp_path / "no-app"
    empty_app_dir.mkdir()
    proc = run_module("deploy.smoke", "--layers", str(out), "--app-dir", str(empty_app_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SMOKE OK" in proc.stdout
    assert "opt/lib/libgomp.so.1" in proc.stdout
    assert "with layer pycs" in proc.stdout


def test_smoke_fails_without_layer_libgomp(built: tuple[Path, str], tmp_path: Path) -> None:
    """Without lib/libgomp.so.1 the host's libgomp would be used: the smoke must object."""
    out, _ = built
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    sandbox = smoke.make_sandbox(tmp_path / "sb", [out / "model-layer.zip"], None, runtime)
    (sandbox / "opt" / "lib" / "libgomp.so.1").unlink()
    with pytest.raises(smoke.SmokeFailure, match="libgomp"):
        smoke.run_inner(
            smoke.base_python(),
            sandbox,
            "layer",
            smoke.lambda_env(sandbox, "t", "unused"),
        )
    shutil.rmtree(sandbox)


def test_smoke_app(built: tuple[Path, str], artifacts_dir: Path) -> None:
    """The real app: api_handler answers POST /predict_price, the batch function has pandas."""
    out, _ = built
    artifacts = artifacts_dir
    proc = run_module(
        "deploy.smoke",
        "--layers",
        str(out),
        "--require-app",
        "--bytecode-repeats",
        "0",
        "--artifacts",
        str(artifacts),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "status 200" in proc.stdout
    assert "compiled under /var/task 0" in proc.stdout
    assert "API function unzipped" in proc.stdout
    assert "heavy modules loaded answering ['predict_price', 'health', 'openapi']" in proc.stdout
    assert "native layer: lib_lightgbm.so loaded" in proc.stdout
    assert "SMOKE OK" in proc.stdout


def test_smoke_fails_when_the_function_zip_has_no_bytecode(
    built: tuple[Path, str], artifacts_dir: Path, tmp_path: Path
) -> None:
    """/var/task is read-only on Lambda: a zip without pycs would compile at every cold start."""
    out, _ = built
    function_zip = layers.build_function_zip(REPO_ROOT, tmp_path / "function.zip")
    assert function_zip is not None
    bare = tmp_path / "bare.zip"
    with zipfile.ZipFile(function_zip) as src, zipfile.ZipFile(bare, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith(".pyc"):
                dst.writestr(info, src.read(info))
    runtime = tmp_path / "runtime"
    smoke.copy_runtime(runtime)
    zips = [out / "native-layer.zip"]
    sandbox = smoke.make_sandbox(tmp_path / "sb", zips, bare, runtime)
    env = smoke.lambda_env(sandbox, "api_handler", str(artifacts_dir))
    with pytest.raises(smoke.SmokeFailure, match=r"compiled under /opt or /var/task: .*var/task/"):
        smoke.run_inner(smoke.base_python(), sandbox, "api", env, smoke.app_spec(smoke.DEFAULT_RECORDS))
    shutil.rmtree(sandbox)


def test_smoke_api_is_lean_on_its_own_layer(built: tuple[Path, str], artifacts_dir: Path) -> None:
    """Issue 10: on the native layer alone, /predict_price, /health and /openapi.json import none of
    numpy, scipy, narwhals, pandas, lightgbm; peak RSS <= 40 MiB; function + layer <= 25 MiB."""
    out, _ = built
    proc = run_module(
        "deploy.smoke",
        *("--layers", str(out), "--require-app", "--bytecode-repeats", "0"),
        *("--artifacts", str(artifacts_dir)),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "api_handler (native layers)" in proc.stdout
    assert "heavy modules loaded answering ['predict_price', 'health', 'openapi']: [] (required: none)" in proc.stdout
