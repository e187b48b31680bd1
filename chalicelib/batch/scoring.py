"""A CSV byte stream in, the same rows with their predictions out.

The output is the input with five columns appended: every input row, in order, with its
cells exactly as given (the original text is copied, never re-formatted), then
`predicted_price` (shortest text that reads back as the same float), `lower` and `upper`
(its interval at the model's default level), `error` (empty when the row was scored, else
every problem as `field: reason; field: reason`) and `warnings` (what is doubtful: an unseen
zipcode or city, a value outside the training data); with `explain`, 40 `contrib_` columns.
Rows out equal rows in, always: a bad row gets an error, never dropped or filled in.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from chalicelib.batch.cells import CONTRIBUTION_COLUMNS, Layout, read_block
from chalicelib.batch.framing import BatchFileError, Readable, record_blocks
from chalicelib.columns_numpy import NumpyOps
from chalicelib.intervals import Intervals
from chalicelib.pipeline import Problem, check
from chalicelib.predictor import Predictor

# Input is read and parsed this many bytes at a time (about 25,000 HouseTS rows), which
# bounds memory whatever the file size.
BLOCK_BYTES = 8 * 1024 * 1024
NUMPY_OPS = NumpyOps()


@dataclass(frozen=True)
class BatchSummary:
    rows: int
    rows_with_errors: int
    model_version: str


@dataclass(frozen=True)
class _CheckedBlock:
    """A block parsed and checked: what is left is to predict its clean rows and write it out.

    Checking and predicting are separate steps so that one block is predicted while the next is checked.
    """

    records: list[bytes]
    errors: dict[int, str]
    warnings: dict[int, str]
    clean_rows: list[int]

    def output(self, scored: _Scored) -> bytes:
        """The block's output lines: each record, then its prediction, interval, errors and warnings
        (and its contributions when asked for)."""
        n = len(self.records)
        values = [b",,"] * n
        if scored.lower is None:
            for row, value in zip(self.clean_rows, scored.predictions.tolist(), strict=True):
                values[row] = b"%a,," % value  # %a of a float is its repr: the shortest text that reads back the same
        else:
            bounds = zip(scored.predictions.tolist(), scored.lower.tolist(), scored.upper.tolist(), strict=True)
            for row, (value, low, high) in zip(self.clean_rows, bounds, strict=True):
                values[row] = b"%a,%a,%a" % (value, low, high)
        blank = b"," * len(CONTRIBUTION_COLUMNS) if scored.contributions is not None else b""
        contributions = [blank] * n
        if scored.contributions is not None:
            for row, row_values in zip(self.clean_rows, scored.contributions.tolist(), strict=True):
                contributions[row] = b"".join(b",%a" % v for v in row_values)
        suffixes = [b",%s,,%s\n" % (v, c) for v, c in zip(values, contributions, strict=True)]
        quoted: dict[str, bytes] = {"": b""}  # rows repeat the same few messages
        for row in self.errors.keys() | self.warnings.keys():
            error, warning = self.errors.get(row, ""), self.warnings.get(row, "")
            for text in (error, warning):
                if text not in quoted:
                    quoted[text] = _quoted(text)
            suffixes[row] = b",%s,%s,%s%s\n" % (values[row], quoted[error], quoted[warning], contributions[row])
        parts: list[bytes] = [b""] * (2 * n)
        parts[0::2] = self.records
        parts[1::2] = suffixes
        return b"".join(parts)


@dataclass(frozen=True)
class _Scored:
    predictions: np.ndarray
    lower: np.ndarray | None  # the interval at the model's default level, when it has intervals
    upper: np.ndarray | None
    contributions: np.ndarray | None  # rows x (39 + 1), when the file asked for explanations


def _quoted(text: str) -> bytes:
    return f'"{text.replace(chr(34), chr(34) * 2)}"'.encode() if text else b""


def _bounds(intervals: Intervals, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`Intervals.interval` of every prediction at the default level, vectorised: the same float
    operations in the same order, so the same bits (tests/test_batch.py checks it row by row)."""
    level = intervals.levels[intervals.default_level]
    band = np.searchsorted(np.asarray(intervals.band_edges, dtype=np.float64), predictions, side="right")
    low = predictions * (1.0 + np.asarray(level.lower)[band])
    high = predictions * (1.0 + np.asarray(level.upper)[band])
    return np.minimum(low, high), np.maximum(low, high)


def _by_row(problems: list[Problem]) -> dict[int, str]:
    """`field: reason; field: reason` per row, in the pipeline's order (rows repeat a few messages)."""
    texts: dict[tuple[str, str], str] = {}
    grouped: dict[int, list[str]] = {}
    for p in problems:
        text = texts.get((p.field, p.message))
        if text is None:
            text = texts[p.field, p.message] = f"{p.field}: {p.message}"
        grouped.setdefault(p.record, []).append(text)
    return {row: "; ".join(messages) for row, messages in grouped.items()}


def _check_block(records: list[bytes], layout: Layout, predictor: Predictor) -> tuple[_CheckedBlock, np.ndarray]:
    """Read and check one block: each row's errors and warnings, and the features of the clean ones."""
    block = read_block(records, layout)
    checked = check(block.columns, predictor.encoders, predictor.domain, NUMPY_OPS)
    errors = _by_row(checked.problems)
    errors.update(block.unreadable_rows)  # a row that is not a row: its cells' problems say nothing more
    warnings = {row: text for row, text in _by_row(checked.warnings).items() if row not in block.unreadable_rows}
    clean = [row for row in checked.rows if row not in block.unreadable_rows]
    features = checked.matrix if len(clean) == len(checked.rows) else checked.matrix[np.isin(checked.rows, clean)]
    return _CheckedBlock(block.records, errors, warnings, clean), features


def _predict(predictor: Predictor, features: np.ndarray, explain: bool) -> _Scored:
    """Through LightGBM's C API, on the block's matrix in place (a C-contiguous float64 buffer)."""
    rows = len(features)
    features = np.ascontiguousarray(features, dtype=np.float64)
    predictions = np.frombuffer(predictor.predict_matrix(features, rows), dtype=np.float64)
    lower, upper = _bounds(predictor.intervals, predictions) if predictor.intervals is not None else (None, None)
    contributions = None
    if explain:
        contributions = np.frombuffer(predictor.contributions_matrix(features, rows), dtype=np.float64)
        contributions = contributions.reshape(rows, len(CONTRIBUTION_COLUMNS))
    return _Scored(predictions, lower, upper, contributions)


def score_csv_stream(
    source: Readable,
    write: Callable[[bytes], None],
    predictor: Predictor,
    block_bytes: int = BLOCK_BYTES,
    explain: bool = False,
) -> BatchSummary:
    """Score a CSV byte stream block by block, passing output bytes to `write`; with `explain`, each
    scored row also gets its contributions (`contrib_<feature>` columns, then `contrib_baseline`).

    Raises BatchFileError for a file that cannot be scored at all; output already
    written is then incomplete, and the caller discards it.
    """
    rows = rows_with_errors = 0
    layout: Layout | None = None
    # One block is predicted by the pool's thread (LightGBM releases the GIL) while this
    # thread writes out the block before it and checks the block after it.
    with ThreadPoolExecutor(1, "batch-predict") as predicts:
        predicting: tuple[_CheckedBlock, Future[_Scored]] | None = None
        for records in record_blocks(source, block_bytes):
            if layout is None:
                layout = Layout.of(records[0])
                write(layout.output_header(explain))
                records = records[1:]
                if not records:
                    continue
            block, features = _check_block(records, layout, predictor)
            submitted = (block, predicts.submit(_predict, predictor, features, explain))
            del features  # held by the pool only until predicted, not while the next block is checked
            if predicting is not None:
                write(predicting[0].output(predicting[1].result()))
            predicting = submitted
            rows += len(block.records)
            rows_with_errors += len(block.errors)
        if predicting is not None:
            write(predicting[0].output(predicting[1].result()))
    if layout is None:
        raise BatchFileError("the file is empty: expected a header row and data rows")
    return BatchSummary(rows, rows_with_errors, predictor.version)
