"""One cold process for bench/native.py: load the model, predict one row, print the times as JSON.

    python -m bench.native_child native|package MODEL_FILE ROW_JSON BLOCKED_MODULES

Only what both kinds need is imported before the measured code, so neither pays for the
bench's own tools. The package kind blocks pandas and scikit-learn first, as the API layer
has neither and lightgbm imports both whenever it can.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def main(kind: str, model_file: str, row_json: str, blocked: str) -> None:
    row = json.loads(row_json)
    if kind == "native":
        from chalicelib.lightgbm_native import NativeBooster

        booster = NativeBooster.from_string(Path(model_file).read_text())
        prediction = booster.predict_row(row)
    else:
        for name in blocked.split(","):
            sys.modules[name] = None  # type: ignore[assignment]
        import lightgbm
        import numpy as np

        booster = lightgbm.Booster(model_str=Path(model_file).read_text())
        prediction = float(booster.predict(np.asarray([row], dtype=np.float64), num_threads=1)[0])
    # CLOCK_MONOTONIC, system-wide on Linux: the parent compares it with its own spawn time.
    predicted_at = time.perf_counter()
    from bench.child import peak_rss_mib

    result = {
        "prediction": prediction,
        "predicted_at": predicted_at,
        "in_process_s": predicted_at - STARTED,
        "peak_rss_mib": peak_rss_mib(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
