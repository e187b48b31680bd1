"""The loaded model: LightGBM's own engine through its C API, the encoders, and what the model saw.

No numpy, scipy or lightgbm package: the API function answers a request with plain Python
lists and `lightgbm_native`'s ctypes calls into `lib_lightgbm.so`, the engine the lightgbm
package itself wraps (the same bits, ~0.2 s less cold start). The batch scorer hands it
numpy matrices as buffers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from chalicelib.artifacts import LATEST, ArtifactError, load_artifacts, open_store
from chalicelib.contract import FEATURE_NAMES
from chalicelib.encoders import Encoders
from chalicelib.intervals import IntervalError, Intervals
from chalicelib.lightgbm_native import LightGBMNativeError, NativeBooster, NativeLibraryError
from chalicelib.logs import log_event
from chalicelib.pipeline import TrainingDomain

# The LightGBM the layers ship (requirements/layer-model.txt); a model trained with another
# major version is refused. tests/test_lightgbm_native.py checks it against the pin.
LIGHTGBM_VERSION = "4.7.0"
# Below this many rows one thread is faster: thread start-up costs more than it saves,
# and under load the default pool spikes single-row latency from microseconds to milliseconds.
SINGLE_THREAD_ROWS = 1000


class Predictor:
    """One model version, ready to predict."""

    def __init__(self, version: str, manifest: dict[str, Any], booster: NativeBooster, encoders: Encoders) -> None:
        if list(manifest.get("features", [])) != list(FEATURE_NAMES):
            raise ArtifactError(f"version {version} expects other features than this code provides")
        if booster.num_feature != len(FEATURE_NAMES):
            raise ArtifactError(f"version {version}: model has {booster.num_feature} features, not 39")
        self.version = version
        self.manifest = manifest
        self.booster = booster
        self.encoders = encoders
        self.domain = TrainingDomain.from_manifest(manifest)
        try:
            self.intervals = Intervals.from_dict(manifest["intervals"]) if "intervals" in manifest else None
        except IntervalError as exc:
            raise ArtifactError(f"version {version}: {exc}") from None

    def predict_rows(self, rows: Sequence[Sequence[float]]) -> list[float]:
        """Predictions for a request's feature rows (lists in model order)."""
        if len(rows) == 1:
            return [self.booster.predict_row(rows[0])]
        flat = array("d", [value for row in rows for value in row])
        return list(self.predict_matrix(flat, len(rows)))

    def predict_matrix(self, values: Any, rows: int) -> array[float]:
        """Predictions for `rows` feature rows in one float64 buffer (a numpy matrix from the batch scorer)."""
        threads = 1 if rows < SINGLE_THREAD_ROWS else 0
        return self.booster.predict_matrix(values, rows, len(FEATURE_NAMES), num_threads=threads)

    def contributions_rows(self, rows: Sequence[Sequence[float]]) -> list[list[float]]:
        """Each row's SHAP contributions in dollars, one per feature, then the baseline (expected value)."""
        return [self.booster.contributions_row(row) for row in rows]

    def contributions_matrix(self, values: Any, rows: int) -> array[float]:
        """Contributions of `rows` rows in one buffer: (39 + 1) values per row, the baseline last."""
        threads = 1 if rows < SINGLE_THREAD_ROWS else 0
        return self.booster.predict_matrix(values, rows, len(FEATURE_NAMES), contrib=True, num_threads=threads)


def load_predictor(uri: str, version: str = LATEST, s3_client: Any = None) -> Predictor:
    """Load and verify a version from a local folder or `s3://bucket/prefix`."""
    artifacts = load_artifacts(open_store(uri, s3_client), version, LIGHTGBM_VERSION)
    try:
        booster = NativeBooster.from_string(artifacts.model)
        encoders = Encoders.from_dict(artifacts.encoders)
    except NativeLibraryError as exc:
        raise ArtifactError(f"LightGBM's library cannot be loaded: {exc}") from None
    except (LightGBMNativeError, KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"version {artifacts.version} cannot be loaded: {exc}") from None
    return Predictor(artifacts.version, artifacts.manifest, booster, encoders)


class LazyPredictor:
    """Loads the model on first use and keeps it for the life of the container.

    Nothing is loaded at import time (the Chalice CLI imports app.py to package it). A
    failed load is not cached: the next request tries again, so a service that started
    while S3 was unreachable recovers by itself.
    """

    def __init__(self, loader: Callable[[], Predictor]) -> None:
        self._loader = loader
        self._predictor: Predictor | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> LazyPredictor:
        """Reads ARTIFACTS_URI and MODEL_VERSION (default LATEST) when the model is first needed."""

        def load() -> Predictor:
            uri = os.environ.get("ARTIFACTS_URI")
            if not uri:
                raise ArtifactError("ARTIFACTS_URI is not set: point it at s3://bucket/prefix or a folder")
            return load_predictor(uri, os.environ.get("MODEL_VERSION", LATEST))

        return cls(load)

    def load_during_lambda_init(self) -> None:
        """On Lambda, load now, while the function initialises, so the first request does not wait.

        Not when the Chalice CLI imports app.py to package or deploy it, and not in tests or
        `chalice local` (no AWS_LAMBDA_FUNCTION_NAME). A failure is logged and left to the
        first request, which tries again and answers 503 with the reason.
        """
        if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and not os.environ.get("AWS_CHALICE_CLI_MODE"):
            with contextlib.suppress(ArtifactError):  # logged by _load; the first request retries
                self.get()

    @property
    def loaded(self) -> Predictor | None:
        return self._predictor

    def get(self) -> Predictor:
        if self._predictor is None:
            with self._lock:
                if self._predictor is None:
                    self._predictor = self._load()
        return self._predictor

    def _load(self) -> Predictor:
        start = time.perf_counter()
        try:
            predictor = self._loader()
        except ArtifactError as exc:
            log_event("model_load_failed", logging.ERROR, reason=str(exc))
            raise
        seconds = round(time.perf_counter() - start, 3)
        log_event("model_loaded", model_version=predictor.version, seconds=seconds)
        return predictor
