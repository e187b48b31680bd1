"""LightGBM prediction through its C API (`c_api.h`) with ctypes: no numpy, scipy or lightgbm package.

Why: importing the lightgbm package pulls numpy, scipy.sparse and narwhals, about 0.37 s of an
API cold start, while `lib_lightgbm.so` alone loads a model and predicts the same value, to the
last bit, about 40 ms after the interpreter starts. Prediction only: training, and everything
else the package does, stays with the package.

The library is found and loaded on first use, never at import, so the Chalice CLI can import
`app.py` on a machine without it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
from array import array
from collections.abc import Mapping, Sequence
from ctypes import POINTER, byref, c_char_p, c_double, c_int, c_int32, c_int64, c_void_p
from pathlib import Path
from types import TracebackType
from typing import Any, Self

LIBRARY_ENV = "LIGHTGBM_LIBRARY"
LIBRARY_NAME = "lib_lightgbm.so"
# Where the lightgbm wheel keeps its library, relative to a sys.path entry: the dev venv's
# site-packages and a Lambda layer's /opt/python.
PACKAGE_LIBRARY = Path("lightgbm") / "lib" / LIBRARY_NAME

# Constants from c_api.h.
C_API_DTYPE_FLOAT64 = 1
C_API_PREDICT_NORMAL = 0
C_API_PREDICT_CONTRIB = 3

# Start at the first iteration and use all of them: the artifact's model text already holds
# only the trees up to the best iteration.
_START_ITERATION = 0
_ALL_ITERATIONS = -1
# A single row is one tree walk per tree: threads would cost more than they save, and under
# contention LightGBM's default pool has been measured to spike a row from 24 us to 6.6 ms.
_SINGLE_ROW_PARAMETERS = b"num_threads=1"
_FLOAT64_FORMATS = frozenset({"d", "@d", "=d", "<d" if sys.byteorder == "little" else ">d"})


class NativeLibraryError(Exception):
    """`lib_lightgbm.so` could not be found or loaded; the message names every place tried."""

    def __init__(self, tried: Sequence[str]) -> None:
        self.tried = list(tried)
        super().__init__("cannot load LightGBM's shared library; tried: " + "; ".join(self.tried))


class LightGBMNativeError(Exception):
    """A LightGBM C API call failed; the message is LightGBM's own (`LGBM_GetLastError`)."""


def load_library(environ: Mapping[str, str] | None = None, search_path: Sequence[str] | None = None) -> ctypes.CDLL:
    """Load `lib_lightgbm.so` from `$LIGHTGBM_LIBRARY`, else a lightgbm package on the path, else by name.

    A set `LIGHTGBM_LIBRARY` is the only place tried: a deliberate path that does not load is
    an error to report, not a reason to pick up some other copy. By name, the dynamic loader
    searches `LD_LIBRARY_PATH`, which on Lambda includes a layer's `/opt/lib`.
    """
    environ = os.environ if environ is None else environ
    search_path = sys.path if search_path is None else search_path
    tried: list[str] = []
    explicit = environ.get(LIBRARY_ENV)
    candidates = [explicit] if explicit else []
    if not explicit:
        for entry in dict.fromkeys(str(Path(entry or ".").resolve() / PACKAGE_LIBRARY) for entry in search_path):
            if os.path.isfile(entry):
                candidates.append(entry)
            else:
                tried.append(f"{entry} (absent)")
        candidates.append(LIBRARY_NAME)
    for candidate in candidates:
        try:
            library = ctypes.CDLL(candidate)
        except OSError as exc:
            where = f"${LIBRARY_ENV}={candidate}" if explicit else candidate
            tried.append(f"{where} ({exc})")
            continue
        _declare(library)
        return library
    raise NativeLibraryError(tried)


@functools.cache
def native_library() -> ctypes.CDLL:
    """The process's library, loaded on the first call; a failure is not cached, the next call tries again."""
    return load_library()


def _declare(library: ctypes.CDLL) -> None:
    """Give ctypes the exact C signatures, so arguments are converted and checked, never guessed."""
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "LGBM_GetLastError": (c_char_p, []),
        "LGBM_BoosterLoadModelFromString": (c_int, [c_char_p, POINTER(c_int), POINTER(c_void_p)]),
        "LGBM_BoosterFree": (c_int, [c_void_p]),
        "LGBM_BoosterGetNumFeature": (c_int, [c_void_p, POINTER(c_int)]),
        "LGBM_BoosterGetNumClasses": (c_int, [c_void_p, POINTER(c_int)]),
        "LGBM_BoosterPredictForMatSingleRowFastInit": (
            c_int,
            [c_void_p, c_int, c_int, c_int, c_int, c_int32, c_char_p, POINTER(c_void_p)],
        ),
        "LGBM_BoosterPredictForMatSingleRowFast": (c_int, [c_void_p, c_void_p, POINTER(c_int64), POINTER(c_double)]),
        "LGBM_BoosterPredictForMat": (
            c_int,
            # handle, data, data_type, nrow, ncol, is_row_major, predict_type, start_iteration,
            # num_iteration, parameter, out_len, out_result
            [
                c_void_p,
                c_void_p,
                c_int,
                c_int32,
                c_int32,
                c_int,
                c_int,
                c_int,
                c_int,
                c_char_p,
                POINTER(c_int64),
                POINTER(c_double),
            ],
        ),
        "LGBM_FastConfigFree": (c_int, [c_void_p]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(library, name)
        function.restype = restype
        function.argtypes = argtypes


def _check(library: ctypes.CDLL, status: int) -> None:
    # The message lives in thread-local storage: read it on the thread that made the call, now.
    if status != 0:
        message = library.LGBM_GetLastError()
        raise LightGBMNativeError(message.decode("utf-8", "replace") if message else f"LightGBM returned {status}")


class _SingleRow:
    """One `FastConfig` (a prepared single-row predictor) with its own input and output buffers."""

    def __init__(self, library: ctypes.CDLL, booster: c_void_p, predict_type: int, num_feature: int) -> None:
        self.handle = c_void_p()
        _check(
            library,
            library.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster,
                predict_type,
                _START_ITERATION,
                _ALL_ITERATIONS,
                C_API_DTYPE_FLOAT64,
                num_feature,
                _SINGLE_ROW_PARAMETERS,
                byref(self.handle),
            ),
        )
        width = num_feature + 1 if predict_type == C_API_PREDICT_CONTRIB else 1
        self.row = (c_double * num_feature)()
        self.out = (c_double * width)()
        self.out_len = c_int64()


class NativeBooster:
    """A LightGBM model loaded from its text format, predicting through the C API.

    Thread-safe: LightGBM locks each prepared single-row predictor itself, and this class
    locks around the input and output buffers it reuses (ctypes releases the GIL during a call).
    """

    def __init__(self, library: ctypes.CDLL, handle: c_void_p) -> None:
        self._library = library
        self._handle: c_void_p | None = handle
        self._lock = threading.Lock()
        self._single: dict[int, _SingleRow] = {}
        num_feature, num_class = c_int(), c_int()
        _check(library, library.LGBM_BoosterGetNumFeature(handle, byref(num_feature)))
        _check(library, library.LGBM_BoosterGetNumClasses(handle, byref(num_class)))
        if num_class.value != 1:
            self.close()
            raise LightGBMNativeError(f"the model has {num_class.value} outputs per row; only single-output models")
        self.num_feature: int = num_feature.value

    @classmethod
    def from_string(cls, model_text: str | bytes, library: ctypes.CDLL | None = None) -> NativeBooster:
        """Load a model from LightGBM's text format (what `Booster.model_to_string` writes)."""
        library = native_library() if library is None else library
        text = model_text.encode() if isinstance(model_text, str) else model_text
        handle, iterations = c_void_p(), c_int()
        _check(library, library.LGBM_BoosterLoadModelFromString(text, byref(iterations), byref(handle)))
        return cls(library, handle)

    def predict_row(self, values: Sequence[float]) -> float:
        """One row, `num_feature` values in model order, through the prepared single-row predictor."""
        with self._lock:
            single = self._prepared(C_API_PREDICT_NORMAL)
            self._fill(single, values)
            self._predict_single(single)
            return single.out[0]

    def contributions_row(self, values: Sequence[float]) -> list[float]:
        """SHAP contributions of one row: `num_feature` values, then the expected value; they sum to the prediction."""
        with self._lock:
            single = self._prepared(C_API_PREDICT_CONTRIB)
            self._fill(single, values)
            self._predict_single(single)
            return single.out[:]

    def predict_matrix(
        self, values: Any, rows: int, cols: int, *, contrib: bool = False, num_threads: int = 0
    ) -> array[float]:
        """Predict `rows` x `cols` float64 values in row-major order.

        `values` is a C-contiguous float64 buffer (`array('d')`, a numpy array, a memoryview),
        used in place when writable and copied once when read-only, or else a sequence of
        floats. Returns `rows` predictions, or with `contrib` `rows` x (`cols` + 1)
        contributions, the last of each row the expected value. `num_threads=0` is LightGBM's
        default (OpenMP's thread count).
        """
        if cols != self.num_feature:
            raise ValueError(f"cols is {cols}, the model has {self.num_feature} features")
        if rows < 0:
            raise ValueError(f"rows is {rows}, must be >= 0")
        width = cols + 1 if contrib else 1
        out = array("d", bytes(8 * rows * width))
        if rows == 0:
            return out
        data = _float64_pointer(values, rows * cols)
        out_len = c_int64()
        # Serialized: each call sets LightGBM's process-wide default thread count from its
        # num_threads, and already spreads its rows over that many threads.
        with self._lock:
            _check(
                self._library,
                self._library.LGBM_BoosterPredictForMat(
                    self._live_handle(),
                    data,
                    C_API_DTYPE_FLOAT64,
                    rows,
                    cols,
                    1,
                    C_API_PREDICT_CONTRIB if contrib else C_API_PREDICT_NORMAL,
                    _START_ITERATION,
                    _ALL_ITERATIONS,
                    f"num_threads={int(num_threads)}".encode(),
                    byref(out_len),
                    (c_double * len(out)).from_buffer(out),
                ),
            )
        if out_len.value != len(out):
            raise LightGBMNativeError(f"LightGBM wrote {out_len.value} values, expected {len(out)}")
        return out

    def close(self) -> None:
        """Free the prepared predictors and the booster; safe to call twice."""
        with self._lock:
            singles, self._single = list(self._single.values()), {}
            for single in singles:
                _check(self._library, self._library.LGBM_FastConfigFree(single.handle))
            if self._handle is not None:
                handle, self._handle = self._handle, None
                _check(self._library, self._library.LGBM_BoosterFree(handle))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # A replaced model must not leak its trees; a failure here has nobody to report to.
        if getattr(self, "_handle", None) is not None:
            with contextlib.suppress(LightGBMNativeError):
                self.close()

    def _live_handle(self) -> c_void_p:
        if self._handle is None:
            raise ValueError("the NativeBooster is closed")
        return self._handle

    def _prepared(self, predict_type: int) -> _SingleRow:
        # Prepared on first use: explained requests are rare, and each FastConfig costs an init.
        single = self._single.get(predict_type)
        if single is None:
            single = _SingleRow(self._library, self._live_handle(), predict_type, self.num_feature)
            self._single[predict_type] = single
        return single

    def _fill(self, single: _SingleRow, values: Sequence[float]) -> None:
        if len(values) != self.num_feature:
            raise ValueError(f"the row has {len(values)} values, the model has {self.num_feature} features")
        single.row[:] = values

    def _predict_single(self, single: _SingleRow) -> None:
        _check(
            self._library,
            self._library.LGBM_BoosterPredictForMatSingleRowFast(
                single.handle, single.row, byref(single.out_len), single.out
            ),
        )


def _float64_pointer(values: Any, count: int) -> Any:
    """A ctypes array over `count` float64 values: the caller's own memory when it is a writable buffer."""
    try:
        view = memoryview(values)
    except TypeError:
        if len(values) != count:
            raise ValueError(f"got {len(values)} values, rows x cols is {count}") from None
        return (c_double * count)(*values)
    with view:
        if view.format not in _FLOAT64_FORMATS:
            raise ValueError(f"the buffer holds {view.format!r} items, not float64 ('d')")
        if not view.c_contiguous:
            raise ValueError("the buffer is not C-contiguous (row-major)")
        if view.nbytes != 8 * count:
            raise ValueError(f"the buffer holds {view.nbytes // 8} values, rows x cols is {count}")
        readonly = view.readonly
    kind = c_double * count
    return kind.from_buffer_copy(values) if readonly else kind.from_buffer(values)
