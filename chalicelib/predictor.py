"""The loaded model: a LightGBM booster and its encoders, predicting on numpy matrices."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import lightgbm
import numpy as np

from chalicelib.artifacts import LATEST, ArtifactError, load_artifacts, open_store
from chalicelib.contract import FEATURE_NAMES
from chalicelib.encoders import Encoders
from chalicelib.logs import log_event
from chalicelib.pipeline import TrainingDomain

# Below this many rows one thread is faster: thread start-up costs more than it saves,
# and under load the default pool spikes single-row latency from microseconds to milliseconds.
SINGLE_THREAD_ROWS = 1000


class Predictor:
    """One model version, ready to predict."""

    def __init__(self, version: str, manifest: dict[str, Any], booster: lightgbm.Booster, encoders: Encoders):
        if list(manifest.get("features", [])) != list(FEATURE_NAMES):
            raise ArtifactError(f"version {version} expects other features than this code provides")
        if booster.num_feature() != len(FEATURE_NAMES):
            raise ArtifactError(f"version {version}: model has {booster.num_feature()} features, not 39")
        self.version = version
        self.manifest = manifest
        self.booster = booster
        self.encoders = encoders
        self.domain = TrainingDomain.from_manifest(manifest)

    def predict(self, matrix: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        if num_threads is None:
            num_threads = 1 if len(matrix) < SINGLE_THREAD_ROWS else 0
        return self.booster.predict(matrix, num_threads=num_threads)

    def predict_rows(self, rows: list[list[float]]) -> list[float]:
        """Predictions for feature rows given as lists (a request's records)."""
        return self.predict(np.array(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))).tolist()


def load_predictor(uri: str, version: str = LATEST, s3_client: Any = None) -> Predictor:
    """Load and verify a version from a local folder or `s3://bucket/prefix`."""
    artifacts = load_artifacts(open_store(uri, s3_client), version, lightgbm.__version__)
    try:
        booster = lightgbm.Booster(model_str=artifacts.model_text)
        encoders = Encoders.from_dict(artifacts.encoders)
    except (lightgbm.basic.LightGBMError, KeyError, TypeError, ValueError) as exc:
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
