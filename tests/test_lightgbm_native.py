"""The ctypes binding gives `lightgbm.Booster.predict`'s values to the last bit, without importing numpy.

Reference values come from the lightgbm package on the same model text; every comparison is
on the float64 bit patterns, so -0.0 against 0.0 or a one-ulp difference fails.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import threading
from array import array
from pathlib import Path

import lightgbm
import numpy as np
import pytest

from chalicelib.artifacts import ENCODERS_FILE, LATEST, MANIFEST_FILE, MODEL_FILE
from chalicelib.encoders import Encoders
from chalicelib.lightgbm_native import (
    LIBRARY_ENV,
    PACKAGE_LIBRARY,
    LightGBMNativeError,
    NativeBooster,
    NativeLibraryError,
    load_library,
    native_library,
)
from training.train import features_of

ROOT = Path(__file__).resolve().parent.parent
HEAVY_MODULES = ("numpy", "scipy", "narwhals", "pandas", "lightgbm")
# LightGBM treats |x| <= 1e-35f (a float32, not the double 1e-35) as zero.
ZERO_THRESHOLD_F32 = struct.unpack("<f", struct.pack("<f", 1e-35))[0]


def bits(values) -> list[bytes]:
    return [struct.pack("<d", float(v)) for v in values]


def low_word_all_ones(value: float) -> float:
    """`value` with the low 32 bits of its float64 pattern set: tl2cgen's union read these as missing."""
    (pattern,) = struct.unpack("<Q", struct.pack("<d", value))
    return struct.unpack("<d", struct.pack("<Q", pattern | 0xFFFFFFFF))[0]


@pytest.fixture(scope="module")
def version_dir(artifacts_dir: Path) -> Path:
    return artifacts_dir / (artifacts_dir / LATEST).read_text().strip()


@pytest.fixture(scope="module")
def model_text(version_dir: Path) -> str:
    return (version_dir / MODEL_FILE).read_text()


@pytest.fixture(scope="module")
def reference(model_text: str) -> lightgbm.Booster:
    return lightgbm.Booster(model_str=model_text)


@pytest.fixture(scope="module")
def native(model_text: str):
    with NativeBooster.from_string(model_text) as booster:
        yield booster


@pytest.fixture(scope="module")
def eval_rows(splits, version_dir: Path) -> np.ndarray:
    encoders = Encoders.from_dict(json.loads((version_dir / ENCODERS_FILE).read_text()))
    return np.ascontiguousarray(features_of(splits.eval, encoders), dtype=np.float64)


def split_thresholds(model_text: str) -> list[tuple[int, float]]:
    """Every (feature, threshold) of the model's splits, read from the text format."""
    pairs: set[tuple[int, float]] = set()
    features: list[int] = []
    for line in model_text.splitlines():
        if line.startswith("split_feature="):
            features = [int(f) for f in line.removeprefix("split_feature=").split()]
        elif line.startswith("threshold="):
            thresholds = [float(t) for t in line.removeprefix("threshold=").split()]
            pairs.update(zip(features, thresholds, strict=True))
    return sorted(pairs)


def adversarial_rows(base: np.ndarray, model_text: str) -> np.ndarray:
    """`base` with one feature at a time set to a split threshold, its neighbours, or a special value."""
    specials = [
        math.nan,
        0.0,
        -0.0,
        1e300,
        -1e300,
        math.inf,
        -math.inf,
        1e-35,
        -1e-35,
        ZERO_THRESHOLD_F32,
        -ZERO_THRESHOLD_F32,
        math.nextafter(ZERO_THRESHOLD_F32, math.inf),
        math.nextafter(ZERO_THRESHOLD_F32, 0.0),
        math.nextafter(1e-35, 0.0),
        5e-324,
        -5e-324,
        low_word_all_ones(1.0),
        low_word_all_ones(-1.0),
    ]
    rows = []
    for column in range(base.size):
        typical = float(base[column])
        for value in [*specials, low_word_all_ones(typical), math.nextafter(typical, math.inf)]:
            row = base.copy()
            row[column] = value
            rows.append(row)
    for column, threshold in split_thresholds(model_text):
        for value in (
            threshold,
            math.nextafter(threshold, math.inf),
            math.nextafter(threshold, -math.inf),
            low_word_all_ones(threshold),
        ):
            row = base.copy()
            row[column] = value
            rows.append(row)
    rows += [np.full_like(base, math.nan), np.zeros_like(base), np.full_like(base, -0.0)]
    return np.ascontiguousarray(rows, dtype=np.float64)


def test_thresholds_are_parsed_from_the_model(model_text):
    pairs = split_thresholds(model_text)
    assert len(pairs) > 100
    assert len({feature for feature, _ in pairs}) > 10


def test_single_row_matches_booster_predict_on_eval_rows(native, reference, eval_rows):
    expected = reference.predict(eval_rows)
    got = [native.predict_row(row.tolist()) for row in eval_rows]
    assert bits(got) == bits(expected)


@pytest.mark.parametrize("num_threads", [0, 1, 2])
def test_matrix_matches_booster_predict_on_eval_rows(native, reference, eval_rows, num_threads):
    expected = reference.predict(eval_rows)
    got = native.predict_matrix(eval_rows, *eval_rows.shape, num_threads=num_threads)
    assert isinstance(got, array) and len(got) == len(eval_rows)
    assert bits(got) == bits(expected)


def test_adversarial_rows_match_booster_predict(native, reference, eval_rows, model_text):
    rows = adversarial_rows(eval_rows[len(eval_rows) // 2], model_text)
    expected = reference.predict(rows)
    assert len(set(bits(expected))) > 50  # the rows reach many different leaves
    assert bits(native.predict_matrix(rows, *rows.shape)) == bits(expected)
    assert bits([native.predict_row(row.tolist()) for row in rows]) == bits(expected)


def test_matrix_accepts_any_float64_buffer_or_a_list(native, reference, eval_rows):
    rows = eval_rows[:25]
    expected = bits(reference.predict(rows))
    read_only = rows.copy()
    read_only.flags.writeable = False
    for values in (array("d", rows.ravel().tolist()), rows.ravel().tolist(), read_only, memoryview(rows.copy())):
        assert bits(native.predict_matrix(values, *rows.shape)) == expected


def test_contributions_match_booster_and_sum_to_the_prediction(native, reference, eval_rows, model_text):
    rows = np.concatenate([eval_rows[:200], adversarial_rows(eval_rows[0], model_text)[::25]])
    width = rows.shape[1] + 1
    expected = reference.predict(rows, pred_contrib=True)
    assert expected.shape == (len(rows), width)
    got = native.predict_matrix(rows, *rows.shape, contrib=True)
    assert bits(got) == bits(expected.ravel())
    predictions = reference.predict(rows)
    for i, row in enumerate(rows):
        single = native.contributions_row(row.tolist())
        assert bits(single) == bits(expected[i])
        assert math.isclose(math.fsum(single), predictions[i], rel_tol=1e-9)


def test_concurrent_single_rows_get_their_own_answers(native, reference, eval_rows):
    expected = bits(reference.predict(eval_rows))
    results: dict[int, list[bytes]] = {}

    def work(offset: int) -> None:
        order = list(range(offset, len(eval_rows))) + list(range(offset))
        got = {i: native.predict_row(eval_rows[i].tolist()) for i in order}
        results[offset] = bits(got[i] for i in range(len(eval_rows)))

    threads = [threading.Thread(target=work, args=(k * 97,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert all(result == expected for result in results.values())


def test_bad_input_is_named(native, eval_rows):
    row = eval_rows[0].tolist()
    with pytest.raises(ValueError, match="38 values, the model has 39 features"):
        native.predict_row(row[:-1])
    with pytest.raises(ValueError, match="cols is 38"):
        native.predict_matrix(eval_rows[:, :-1].copy(), len(eval_rows), 38)
    with pytest.raises(ValueError, match="not float64"):
        native.predict_matrix(array("f", row), 1, 39)
    with pytest.raises(ValueError, match="not C-contiguous"):
        native.predict_matrix(np.asfortranarray(eval_rows[:3]), 3, 39)
    with pytest.raises(ValueError, match="holds 39 values, rows x cols is 78"):
        native.predict_matrix(array("d", row), 2, 39)
    with pytest.raises(TypeError):
        native.predict_row(["1.0", *row[1:]])
    assert len(native.predict_matrix(array("d"), 0, 39)) == 0


def test_lightgbm_errors_carry_its_message(model_text):
    with pytest.raises(LightGBMNativeError, match="number of classes"):
        NativeBooster.from_string("not a model")
    multiclass = model_text.replace("num_class=1\n", "num_class=3\n", 1)
    with pytest.raises(LightGBMNativeError):
        NativeBooster.from_string(multiclass)


def test_close_frees_once_and_refuses_later_use(model_text, eval_rows):
    booster = NativeBooster.from_string(model_text.encode())
    row = eval_rows[0].tolist()
    booster.predict_row(row)
    booster.contributions_row(row)
    booster.close()
    booster.close()
    with pytest.raises(ValueError, match="closed"):
        booster.predict_row(row)
    with pytest.raises(ValueError, match="closed"):
        booster.predict_matrix(eval_rows[:1], 1, 39)


def test_library_from_the_environment_is_the_only_place_tried(tmp_path):
    real = native_library()._name
    assert load_library({LIBRARY_ENV: real}, [])._name == real
    # lib_lightgbm.so is loaded in this process, so a lookup by name would succeed: it must not be tried.
    with pytest.raises(NativeLibraryError, match=f"{LIBRARY_ENV}={tmp_path}/missing.so"):
        load_library({LIBRARY_ENV: str(tmp_path / "missing.so")}, [str(tmp_path)])


def test_library_from_a_lightgbm_package_on_the_path(tmp_path):
    layer = tmp_path / "python"
    (layer / PACKAGE_LIBRARY).parent.mkdir(parents=True)
    shutil.copy(native_library()._name, layer / PACKAGE_LIBRARY)
    assert load_library({}, [str(tmp_path / "elsewhere"), str(layer)])._name == str(layer / PACKAGE_LIBRARY)


def run_clean(script: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run `script` in a fresh interpreter with only the repository on its path."""
    environ = {k: v for k, v in os.environ.items() if k not in (LIBRARY_ENV, "LD_LIBRARY_PATH", "PYTHONPATH")}
    return subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r})\n{script}"],
        cwd=tmp_path,
        env=environ | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_library_names_every_place_tried(tmp_path):
    script = (
        "from chalicelib.lightgbm_native import load_library, NativeLibraryError\n"
        f"try:\n    load_library({{}}, [{str(tmp_path)!r}])\n"
        "except NativeLibraryError as exc:\n    print(exc)\n"
    )
    result = run_clean(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / PACKAGE_LIBRARY} (absent)" in result.stdout
    assert "lib_lightgbm.so: cannot open shared object file" in result.stdout


def test_library_by_name_on_ld_library_path(tmp_path):
    script = "from chalicelib.lightgbm_native import load_library\nprint(load_library({}, [])._name)\n"
    folder = Path(native_library()._name).parent
    result = run_clean(script, tmp_path, LD_LIBRARY_PATH=str(folder))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "lib_lightgbm.so"


def test_predicting_imports_no_numpy_scipy_pandas_or_lightgbm(version_dir, reference, eval_rows, tmp_path):
    """The serving path: model, prediction, contributions and interval, as the API will run them."""
    rows = eval_rows[:3]
    script = (
        "import json, sys\n"
        "from array import array\n"
        "from chalicelib.intervals import Intervals\n"
        "from chalicelib.lightgbm_native import NativeBooster\n"
        f"booster = NativeBooster.from_string(open({str(version_dir / MODEL_FILE)!r}).read())\n"
        f"intervals = Intervals.from_dict(json.load(open({str(version_dir / MANIFEST_FILE)!r}))['intervals'])\n"
        f"rows = {rows.tolist()!r}\n"
        "single = [booster.predict_row(row) for row in rows]\n"
        "matrix = list(booster.predict_matrix(array('d', [v for row in rows for v in row]), 3, 39))\n"
        "contrib = booster.contributions_row(rows[0])\n"
        "interval = intervals.interval(single[0], 0.95)\n"
        f"heavy = sorted({{m for m in sys.modules if m.split('.')[0] in {HEAVY_MODULES!r}}})\n"
        "print(json.dumps({'single': single, 'matrix': matrix, 'contrib': contrib, 'interval': interval,"
        " 'heavy': heavy}))\n"
    )
    result = run_clean(script, tmp_path)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["heavy"] == []
    expected = bits(reference.predict(rows))
    assert bits(answer["single"]) == expected
    assert bits(answer["matrix"]) == expected
    assert bits(answer["contrib"]) == bits(reference.predict(rows[:1], pred_contrib=True)[0])
    assert answer["interval"][0] < answer["single"][0] < answer["interval"][1]


def test_the_version_the_service_checks_models_against_is_the_layers_pin() -> None:
    """chalicelib.predictor names the LightGBM version without importing the package (it is not on
    the API function's path): it must be the version the layers ship and the dev venv trains with."""
    import lightgbm

    from chalicelib.predictor import LIGHTGBM_VERSION

    pins = (Path(__file__).resolve().parent.parent / "requirements" / "layer-model.txt").read_text()
    assert f"lightgbm=={LIGHTGBM_VERSION}" in pins.splitlines()
    assert lightgbm.__version__ == LIGHTGBM_VERSION
