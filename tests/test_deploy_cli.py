"""deploy's library functions raise typed errors; only the command lines turn them into exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy import layers, smoke


def test_layer_problems_are_one_typed_error_naming_each(tmp_path: Path) -> None:
    with pytest.raises(layers.LayerBuildError, match=r"checks:\n  - first\n  - second"):
        layers.fail(layers.Problem(["first", "second"]), "checks")
    layers.fail(layers.Problem(), "nothing wrong")
    pins = tmp_path / "pins.txt"
    pins.write_text("numpy>=2\n")
    with pytest.raises(layers.LayerBuildError, match="not an exact pin: 'numpy>=2'"):
        layers.read_pins(pins)


def test_lean_check_names_each_miss() -> None:
    lean = {
        "answered": ["predict_price", "health", "openapi"],
        "heavy_modules_loaded": [],
        "peak_rss_mib": 22.0,
        "peak_rss_budget_mib": 40.0,
        "unzipped_mib": 9.4,
        "budget_mib": 25.0,
    }
    assert smoke.lean_problems(lean) == []
    heavy = lean | {"heavy_modules_loaded": ["numpy", "lightgbm"], "peak_rss_mib": 60.0, "unzipped_mib": 70.0}
    assert smoke.lean_problems(heavy) == [
        "answering ['predict_price', 'health', 'openapi'] imported ['numpy', 'lightgbm']",
        "peak RSS 60.0 MiB > 40 MiB",
        "unzipped 70.0 MiB > 25 MiB",
    ]


def test_smoke_cli_reports_a_failure_as_exit_code_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke.main(["--layers", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("SMOKE FAILED: ") and "model-layer.zip missing" in err
