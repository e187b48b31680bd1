"""Batch scoring of CSV files: uploads to S3 (the `score_uploaded_csv` Lambda) and local files.

    ARTIFACTS_URI=artifacts python -m chalicelib.batch in.csv out.csv

The output is the input with two columns appended: every input row, in order, with its
cells exactly as given (the original text is copied, never re-formatted), then
`predicted_price` (shortest text that reads back as the same float) and `error` (empty
when the row was scored, else every problem as `field: reason; field: reason`). Rows out
equal rows in, always: a bad row gets an error, never dropped or filled in.

A row is either pre-encoded (the header has `zipcode_freq` and `city_encoded`: all 39
features are needed) or raw HouseTS (`zipcode`, `city_full`, `date` or `year`+`month`, the
passthrough numbers; `lat`/`lng` may be left out and are then looked up from the city).
Bounds are `validation.out_of_bounds`, features `features.build_features`: the same code
as the JSON API.

A file that cannot be scored at all (not UTF-8, no header, required columns missing,
unbalanced quotes) is scored whole or not at all: on S3 an error report
`<output prefix><path>.error.json` takes the place of `<output prefix><path>.predictions.csv`.

pandas is imported only where CSV text is parsed: app.py imports this module, and the API
function has no pandas on its path.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote_plus

import numpy as np

from chalicelib.artifacts import LATEST
from chalicelib.contract import FEATURE_NAMES, LOCATION, PASSTHROUGH, normalize_zipcode, parse_date, quarter_of
from chalicelib.features import build_features
from chalicelib.logs import log_event
from chalicelib.predictor import LazyPredictor, Predictor, load_predictor
from chalicelib.validation import out_of_bounds, quarter_mismatches

PREDICTION_COLUMN = "predicted_price"
ERROR_COLUMN = "error"
PREDICTIONS_SUFFIX = ".predictions.csv"
ERROR_REPORT_SUFFIX = ".error.json"
# Input is read and parsed this many bytes at a time (about 25,000 HouseTS rows), which
# bounds memory whatever the file size.
BLOCK_BYTES = 8 * 1024 * 1024
# S3 multipart parts must be at least 5 MiB, except the last.
PART_BYTES = 8 * 1024 * 1024
# Parts handed to the upload thread and not yet uploaded: one lets the upload of a part
# overlap the scoring of the next block, and bounds memory to that part and the next.
PENDING_PARTS = 1
# A record still open after this many bytes is an unbalanced quote, not a real row.
MAX_RECORD_BYTES = 16 * 1024 * 1024


_QUOTED = re.compile(rb'"[^"]*"')
_BOM = b"\xef\xbb\xbf"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_YEAR, _QUARTER, _MONTH = (FEATURE_NAMES.index(n) for n in ("year", "quarter", "month"))
_PASSTHROUGH_NAMES = tuple(f.name for f in PASSTHROUGH)
_LOCATION_NAMES = tuple(f.name for f in LOCATION)
_PASSTHROUGH_COLUMNS = [FEATURE_NAMES.index(n) for n in _PASSTHROUGH_NAMES]
# Passthrough columns a raw CSV must have; lat/lng may be looked up from the city instead.
_GIVEN_NAMES = tuple(n for n in _PASSTHROUGH_NAMES if n not in _LOCATION_NAMES)


class Readable(Protocol):
    """What scoring reads from: a local file, an S3 body, or the read-ahead over one."""

    def read(self, size: int, /) -> bytes: ...


class BatchFileError(Exception):
    """A file that cannot be scored at all; the message says why, for the error report."""


@dataclass(frozen=True)
class BatchSettings:
    """Where uploads arrive and where their predictions go."""

    input_bucket: str
    input_prefix: str
    input_suffix: str
    output_bucket: str
    output_prefix: str

    @classmethod
    def from_environment(cls) -> BatchSettings:
        """Read at import by app.py, so it is cheap, does no I/O and has defaults for packaging."""
        env = os.environ.get
        return cls(
            input_bucket=env("INPUT_BUCKET", "house-prices-input"),
            input_prefix=env("INPUT_PREFIX", "incoming/"),
            input_suffix=env("INPUT_SUFFIX", ".csv"),
            output_bucket=env("OUTPUT_BUCKET", "house-prices-output"),
            output_prefix=env("OUTPUT_PREFIX", "predictions/"),
        )

    def check(self) -> None:
        """Refuse a configuration whose outputs would be scored again (an endless loop)."""
        if not self.input_bucket or not self.output_bucket:
            raise ValueError("INPUT_BUCKET and OUTPUT_BUCKET must both be set")
        if self.input_bucket != self.output_bucket:
            return
        # An output key is output_prefix + anything + one of our suffixes; it matches the
        # trigger if some such key starts with input_prefix and ends with input_suffix.
        prefixes_overlap = self.output_prefix.startswith(self.input_prefix) or self.input_prefix.startswith(
            self.output_prefix
        )
        suffixes_overlap = any(
            ours.endswith(self.input_suffix) or self.input_suffix.endswith(ours)
            for ours in (PREDICTIONS_SUFFIX, ERROR_REPORT_SUFFIX)
        )
        if prefixes_overlap and suffixes_overlap:
            raise ValueError(
                f"output s3://{self.output_bucket}/{self.output_prefix}*{PREDICTIONS_SUFFIX} would trigger the "
                f"handler again (input s3://{self.input_bucket}/{self.input_prefix}*{self.input_suffix}): "
                "use another OUTPUT_BUCKET, or an OUTPUT_PREFIX outside INPUT_PREFIX"
            )

    def output_key(self, input_key: str) -> str:
        """`incoming/2024/a b.csv` -> `predictions/2024/a b.predictions.csv`; never outside the output prefix."""
        if not input_key.startswith(self.input_prefix) or not input_key.endswith(self.input_suffix):
            raise ValueError(f"key {input_key!r} is not under {self.input_prefix!r} with suffix {self.input_suffix!r}")
        relative = input_key[len(self.input_prefix) : len(input_key) - len(self.input_suffix)]
        if "\\" in relative or _CONTROL.search(relative):
            raise ValueError(f"key {input_key!r} holds a backslash or a control character")
        segments = relative.split("/")
        if any(s in ("", ".", "..") for s in segments):
            raise ValueError(f"key {input_key!r} has an empty, '.' or '..' path segment (or is absolute)")
        return self.output_prefix + relative + PREDICTIONS_SUFFIX

    def error_report_key(self, input_key: str) -> str:
        return self.output_key(input_key).removesuffix(PREDICTIONS_SUFFIX) + ERROR_REPORT_SUFFIX


@dataclass(frozen=True)
class BatchSummary:
    rows: int
    rows_with_errors: int
    model_version: str


@dataclass(frozen=True)
class ObjectResult:
    """What became of one uploaded object: `scored`, `failed` (error report) or `rejected` (bad key)."""

    bucket: str
    key: str
    status: str
    output_key: str | None
    rows: int = 0
    rows_with_errors: int = 0
    error: str | None = None


# ---------------------------------------------------------------------------- reading


def _close_quotes(lines: list[bytes]) -> tuple[list[bytes], bytes | None]:
    """Join physical lines into CSV records (a quoted field may hold newlines); also the open tail."""
    if not any(line.count(b'"') & 1 for line in lines):
        return lines, None
    records: list[bytes] = []
    current: bytes | None = None
    for line in lines:
        odd = line.count(b'"') & 1
        if current is None and not odd:
            records.append(line)
        elif current is None:
            current = line
        else:
            current += b"\n" + line
            if odd:
                records.append(current)
                current = None
    return records, current


def _record_blocks(source: Readable, block_bytes: int) -> Iterator[list[bytes]]:
    """Complete CSV records without their line ends, a block of input at a time."""
    pending = b""
    while block := source.read(block_bytes):
        text = pending + block
        lines = text.split(b"\n")
        pending = lines.pop()
        # Most files quote nothing; the per-line quote count is then skipped.
        records, open_record = _close_quotes(lines) if b'"' in text else (lines, None)
        if open_record is not None:
            pending = open_record + b"\n" + pending
        if len(pending) > MAX_RECORD_BYTES:
            raise BatchFileError(f"a row longer than {MAX_RECORD_BYTES:,} bytes: is a quote not closed?")
        if records:
            yield records
    if pending:
        records, open_record = _close_quotes([pending])
        if open_record is not None:
            raise BatchFileError("the file ends inside a quoted field: is a quote not closed?")
        yield records


@dataclass(frozen=True)
class _Layout:
    """What the header says: the output header and where each needed column is."""

    header: bytes
    width: int
    encoded: bool
    positions: dict[str, int]

    @classmethod
    def of(cls, record: bytes) -> _Layout:
        record = record.removeprefix(_BOM).removesuffix(b"\r")
        try:
            names = next(csv.reader([record.decode("utf-8")]), [])
        except UnicodeDecodeError:
            raise BatchFileError("the header is not UTF-8 text: is this a CSV file?") from None
        except csv.Error as exc:
            raise BatchFileError(f"the header is not a CSV row: {exc}") from None
        if not any(n.strip() for n in names):
            raise BatchFileError("the first line, which must be the header, is empty")
        if len(names) == 1:
            other = next((d for d in (";", "\t", "|") if d in names[0]), None)
            if other:
                raise BatchFileError(f"the header is one column holding {other!r}: the file must be comma-separated")
        clash = [n for n in (PREDICTION_COLUMN, ERROR_COLUMN) if n in names]
        if clash:
            raise BatchFileError(f"the input already has column(s) {clash}: is it an output file?")
        encoded = "zipcode_freq" in names and "city_encoded" in names
        if encoded:
            needed: tuple[str, ...] = FEATURE_NAMES
            hint = "a pre-encoded CSV needs all 39 model features"
        else:
            calendar = ("date",) if "date" in names else ("year", "month")
            needed = ("zipcode", "city_full", *calendar, *_GIVEN_NAMES)
            hint = (
                "a raw CSV needs zipcode, city_full, date (or year and month) and the HouseTS numeric columns; "
                "a pre-encoded one needs all 39 model features"
            )
        missing = [n for n in needed if n not in names]
        if missing:
            raise BatchFileError(f"missing column(s) {', '.join(missing)} ({hint})")
        optional = () if encoded else tuple(n for n in _LOCATION_NAMES if n in names)
        twice = [n for n in (*needed, *optional) if names.count(n) > 1]
        if twice:
            raise BatchFileError(f"column(s) {', '.join(twice)} appear more than once")
        positions = {n: names.index(n) for n in (*needed, *optional)}
        return cls(record, len(names), encoded, positions)

    @property
    def texts(self) -> tuple[str, ...]:
        """Columns read as text: identifiers, whose values are not numbers."""
        return () if self.encoded else tuple(n for n in ("zipcode", "city_full", "date") if n in self.positions)


class _Cells:
    """One block's needed columns: numbers as float64 (NaN when absent), and which cells were empty."""

    def __init__(self, data: bytes, rows: int, width: int, layout: _Layout) -> None:
        import pandas as pd

        texts = {layout.positions[n] for n in layout.texts}
        numeric = [p for p in layout.positions.values() if p not in texts]
        options: dict[str, Any] = {
            "header": None,
            "names": range(width),
            "usecols": sorted(layout.positions.values()),
            "keep_default_na": False,
            "skip_blank_lines": False,
            "encoding": "utf-8",
        }
        try:
            # Fast path: the C parser converts numbers itself, and only an empty cell is NaN.
            frame = pd.read_csv(
                io.BytesIO(data),
                dtype={p: "float64" if p in numeric else str for p in options["usecols"]},
                na_values={p: [""] for p in numeric},
                **options,
            )
            as_text = False
        except ValueError:
            # Some cell is not a number: read text and convert, so each cell can say why.
            frame = pd.read_csv(io.BytesIO(data), dtype=str, **options)
            as_text = True
        if len(frame) != rows:
            raise BatchFileError("the rows cannot be told apart: check the quoting")
        self.frame = frame
        self.numbers: dict[int, np.ndarray] = {}
        self.empty: dict[int, np.ndarray] = {}
        for p in numeric:
            if as_text:
                cells = frame[p].fillna("")
                self.numbers[p] = pd.to_numeric(cells, errors="coerce").to_numpy(np.float64)
                self.empty[p] = (cells.str.strip() == "").to_numpy(bool)
            else:
                self.numbers[p] = frame[p].to_numpy(np.float64)
                self.empty[p] = np.isnan(self.numbers[p])

    def text(self, position: int) -> np.ndarray:
        return self.frame[position].fillna("").to_numpy(dtype=object)

    def check_numbers(self, position: int, name: str, problems: _Problems, empty_too: bool = True) -> None:
        """Report the cells of a numeric column that are empty (if `empty_too`) or not numbers."""
        values, empty = self.numbers[position], self.empty[position]
        if empty_too:
            problems.add(np.flatnonzero(empty), position, name, "missing")
        bad = np.flatnonzero(np.isnan(values) & ~empty)
        problems.add(bad, position, name, lambda r: f"not a number ({str(self.frame[position].iat[r])[:40]!r})")


# ---------------------------------------------------------------------------- scoring


def _field_counts(data: bytes, rows: int) -> np.ndarray:
    """Fields per record: separators outside quoted sections, plus one.

    Counted with numpy on the whole block (commas before each line end), not line by line:
    this runs on every block, and a per-line loop was a tenth of the time not spent predicting.
    """
    if b'"' in data:
        data = _QUOTED.sub(b"", data)
    text = np.frombuffer(data, dtype=np.uint8)
    line_ends = np.flatnonzero(text == ord("\n"))
    if len(line_ends) != rows:
        raise BatchFileError("unbalanced quotes: the rows cannot be told apart")
    commas_before = np.searchsorted(np.flatnonzero(text == ord(",")), line_ends)
    return np.diff(commas_before, prepend=0) + 1


class _Problems:
    """Row problems, reported per row in header order."""

    def __init__(self) -> None:
        self.found: list[tuple[int, int, str]] = []

    def add(self, rows: np.ndarray | list[int], position: int, name: str, reason: str | Callable[[int], str]) -> None:
        """`reason` is the text, or a function of the row for reasons that quote the cell."""
        for row in rows:
            text = reason if isinstance(reason, str) else reason(int(row))
            self.found.append((int(row), position, f"{name}: {text}"))

    def by_row(self) -> dict[int, str]:
        grouped: dict[int, list[str]] = {}
        for row, _, message in sorted(self.found):
            grouped.setdefault(row, []).append(message)
        return {row: "; ".join(messages) for row, messages in grouped.items()}


@dataclass(frozen=True)
class _CheckedBlock:
    """A block parsed and checked: what is left is to predict its clean rows and write it out.

    Checking and predicting are separate steps so that one block is predicted while the next is checked.
    """

    records: list[bytes]
    errors: dict[int, str]
    clean_rows: list[int]

    def output(self, predictions: np.ndarray) -> bytes:
        """The block's output lines: each record, then its prediction or its errors."""
        n = len(self.records)
        suffixes = [b",,\n"] * n
        for row, value in zip(self.clean_rows, predictions.tolist(), strict=True):
            suffixes[row] = b",%a,\n" % value  # %a of a float is its repr, as bytes without an encode
        for row, message in self.errors.items():
            suffixes[row] = f',,"{message.replace(chr(34), chr(34) * 2)}"\n'.encode()
        parts: list[bytes] = [b""] * (2 * n)
        parts[0::2] = self.records
        parts[1::2] = suffixes
        return b"".join(parts)


def _predict(predictor: Predictor, features: np.ndarray) -> np.ndarray:
    return predictor.predict(features) if len(features) else np.empty(0)


def _check_block(records: list[bytes], layout: _Layout, predictor: Predictor) -> tuple[_CheckedBlock, np.ndarray]:
    """Parse and check one block of records: each row's errors, and the features of the clean ones."""
    n = len(records)
    data = b"\n".join([*records, b""])
    if b"\r" in data:  # CRLF line ends, maybe: one scan of the block, not a test per record
        records = [r.removesuffix(b"\r") for r in records]
        data = b"\n".join([*records, b""])
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BatchFileError(f"not UTF-8 text (byte {exc.object[exc.start]:#04x})") from None
    counts = _field_counts(data, n)
    misfits = np.flatnonzero(counts != layout.width).tolist()
    if misfits:
        # Padded or cut before parsing, so columns line up in the parse and in the output.
        for row in misfits:
            records[row] = _fit_width(records[row], int(counts[row]), layout.width)
        data = b"\n".join([*records, b""])
    cells = _Cells(data, n, layout.width, layout)
    problems = _Problems()
    matrix = np.full((n, len(FEATURE_NAMES)), np.nan)
    numeric = FEATURE_NAMES if layout.encoded else _GIVEN_NAMES
    for name in numeric:
        position = layout.positions[name]
        matrix[:, FEATURE_NAMES.index(name)] = cells.numbers[position]
        cells.check_numbers(position, name, problems)
    encode = _raw_values(cells, layout, matrix, problems, predictor) if not layout.encoded else None
    for row, column, reason in out_of_bounds(matrix):
        name = FEATURE_NAMES[column]
        problems.add([row], layout.positions.get(name, -1), name, reason)
    if layout.encoded:
        for row, reason in quarter_mismatches(matrix):
            problems.add([row], layout.positions["quarter"], "quarter", reason)
    errors = problems.by_row()
    for row in misfits:
        fields = int(counts[row])
        errors[row] = (
            f"has {fields} fields; the header has {layout.width}"
            if fields > 1 or records[row].strip(b",")
            else "empty line"
        )
        if fields > layout.width:
            errors[row] += f" (cells after the {layout.width}th are left out here)"
    scored = np.ones(n, dtype=bool)
    scored[list(errors)] = False
    clean = matrix[scored]
    if encode and len(clean):
        clean = encode(scored, clean)
    return _CheckedBlock(records, errors, np.flatnonzero(scored).tolist()), clean


def _fit_width(record: bytes, fields: int, width: int) -> bytes:
    """A short row padded with empty cells, a long one cut after `width` cells, so columns line up."""
    if fields < width:
        return record + b"," * (width - fields)
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(next(csv.reader([record.decode("utf-8")]))[:width])
    return out.getvalue().encode()


def _raw_values(
    cells: _Cells, layout: _Layout, matrix: np.ndarray, problems: _Problems, predictor: Predictor
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Check a raw block's calendar, identifiers and locations (looking up the missing ones)
    into `matrix`, and return the encoder step for the rows that end up clean."""
    import pandas as pd

    n = len(matrix)
    pos = layout.positions
    if "date" in pos:
        dates = cells.text(pos["date"])
        parsed = {d: _parse_date(d) for d in pd.unique(dates)}
        calendar = np.array([parsed[d] for d in dates], dtype=np.float64).reshape(n, 2)
        bad = np.flatnonzero(np.isnan(calendar[:, 0]))
        problems.add(bad, pos["date"], "date", lambda r: _date_problem(str(dates[r])))
    else:
        calendar = np.column_stack([cells.numbers[pos["year"]], cells.numbers[pos["month"]]])
        for name in ("year", "month"):
            cells.check_numbers(pos[name], name, problems)
    matrix[:, _YEAR], matrix[:, _MONTH] = calendar[:, 0], calendar[:, 1]
    whole = np.isfinite(calendar[:, 1]) & (calendar[:, 1] == np.floor(calendar[:, 1]))
    matrix[whole, _QUARTER] = quarter_of(calendar[whole, 1].astype(np.int64))

    zipcodes = cells.text(pos["zipcode"])
    normalized = {z: _normalize_zipcode(z) for z in pd.unique(zipcodes)}
    bad = np.flatnonzero([normalized[z][1] is not None for z in zipcodes])
    problems.add(bad, pos["zipcode"], "zipcode", lambda r: str(normalized[zipcodes[r]][1]))

    cities = cells.text(pos["city_full"])
    problems.add(np.flatnonzero([not c.strip() for c in cities]), pos["city_full"], "city_full", "missing")
    known = {c: predictor.encoders.locations.lookup(c) or (np.nan, np.nan) for c in pd.unique(cities)}
    looked_up = np.array([known[c] for c in cities], dtype=np.float64).reshape(n, 2)
    for index, name in enumerate(_LOCATION_NAMES):
        column = FEATURE_NAMES.index(name)
        if name in pos:
            matrix[:, column] = cells.numbers[pos[name]]
            cells.check_numbers(pos[name], name, problems, empty_too=False)
            empty = cells.empty[pos[name]]
        else:
            empty = np.ones(n, dtype=bool)
        matrix[empty, column] = looked_up[empty, index]
        for row in np.flatnonzero(empty & np.isnan(looked_up[:, index])):
            city = str(cities[row])
            why = f"city_full {city!r} is not a known city" if city.strip() else "there is no city_full"
            problems.add([row], pos.get(name, layout.width), name, f"missing, and {why} to look it up from")

    def encode(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        return build_features(
            values[:, _YEAR],
            values[:, _MONTH],
            [normalized[z][0] for z in zipcodes[rows]],
            list(cities[rows]),
            values[:, _PASSTHROUGH_COLUMNS],
            predictor.encoders,
        )

    return encode


def _parse_date(text: str) -> tuple[float, float]:
    try:
        year, month = parse_date(text)
    except ValueError:
        return np.nan, np.nan
    return float(year), float(month)


def _date_problem(text: str) -> str:
    return "missing" if not text.strip() else f"must be an ISO date like 2021-07-01, got {text[:40]!r}"


def _normalize_zipcode(text: str) -> tuple[str, str | None]:
    """The zipcode and no problem, or a placeholder and what is wrong with it."""
    if not text.strip():
        return "00000", "missing"
    try:
        return normalize_zipcode(text), None
    except ValueError as exc:
        return "00000", str(exc)


def score_csv_stream(
    source: Readable,
    write: Callable[[bytes], None],
    predictor: Predictor,
    progress: Callable[[int], None] | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> BatchSummary:
    """Score a CSV byte stream block by block, passing output bytes to `write`.

    Raises BatchFileError for a file that cannot be scored at all; output already
    written is then incomplete, and the caller discards it.
    """
    rows = rows_with_errors = 0
    layout: _Layout | None = None
    # One block is predicted by the pool's thread (LightGBM releases the GIL) while this
    # thread writes out the block before it and checks the block after it.
    with ThreadPoolExecutor(1, "batch-predict") as predicts:
        predicting: tuple[_CheckedBlock, Future[np.ndarray]] | None = None
        for records in _record_blocks(_Counting(source, progress), block_bytes):
            if layout is None:
                layout = _Layout.of(records[0])
                write(layout.header + f",{PREDICTION_COLUMN},{ERROR_COLUMN}\n".encode())
                records = records[1:]
                if not records:
                    continue
            block, features = _check_block(records, layout, predictor)
            submitted = (block, predicts.submit(_predict, predictor, features))
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


class _Counting:
    """A byte stream that reports how much has been read (for a progress bar)."""

    def __init__(self, source: Readable, progress: Callable[[int], None] | None) -> None:
        self.source = source
        self.progress = progress

    def read(self, size: int) -> bytes:
        data = self.source.read(size)
        if self.progress is not None:
            self.progress(len(data))
        return data


def score_csv_file(
    source: Path, target: Path, predictor: Predictor, progress: Callable[[int], None] | None = None
) -> BatchSummary:
    """Score a local file; the target appears only complete (written aside, then renamed)."""
    partial = target.with_name(target.name + ".partial")
    try:
        with source.open("rb") as reader, partial.open("wb") as writer:
            summary = score_csv_stream(reader, writer.write, predictor, progress)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return summary


# ---------------------------------------------------------------------------- S3


class _ReadAhead:
    """A stream whose next block is read by a background thread while the caller scores this one.

    One block ahead at most, so memory stays bounded; a failed read is raised by `read`.
    """

    def __init__(self, source: Readable, reads: Executor) -> None:
        self.source, self.reads = source, reads
        self.next: Future[bytes] | None = None

    def read(self, size: int) -> bytes:
        data = (self.next or self.reads.submit(self.source.read, size)).result()
        self.next = self.reads.submit(self.source.read, size) if data else None
        return data


class _MultipartWriter:
    """Writes one S3 object in parts of at least PART_BYTES, or with one PUT if it is small.

    Parts go to S3 in order from one background thread (`uploads`), so the caller scores the
    next block meanwhile, and waits while PENDING_PARTS are. A failed part is raised in
    the caller when it hands over the next part or completes.
    """

    def __init__(
        self, client: Any, bucket: str, key: str, metadata: dict[str, str], part_bytes: int, uploads: Executor
    ) -> None:
        self.client, self.bucket, self.key, self.metadata = client, bucket, key, metadata
        self.part_bytes = part_bytes
        self.uploads = uploads
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.pending: deque[Future[dict[str, Any]]] = deque()

    def write(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= self.part_bytes:
            with memoryview(self.buffer) as view:  # one copy of the part, not two
                part = bytes(view[: self.part_bytes])
            del self.buffer[: self.part_bytes]
            self._upload_part(part)

    def _upload_part(self, body: bytes) -> None:
        if self.upload_id is None:
            self.upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType="text/csv; charset=utf-8", Metadata=self.metadata
            )["UploadId"]
        self._collect(PENDING_PARTS - 1)  # before handing over more: a failed part stops the upload here
        number = len(self.parts) + len(self.pending) + 1
        self.pending.append(self.uploads.submit(self._send_part, self.upload_id, number, body))

    def _send_part(self, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        reply = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": reply["ETag"]}

    def _collect(self, keep: int) -> None:
        """Record the parts uploaded so far, waiting until at most `keep` are pending; raise a failed one."""
        while self.pending and (len(self.pending) > keep or self.pending[0].done()):
            self.parts.append(self.pending.popleft().result())

    def complete(self) -> None:
        if self.upload_id is None:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=bytes(self.buffer),
                ContentType="text/csv; charset=utf-8",
                Metadata=self.metadata,
            )
            return
        if self.buffer:
            self._upload_part(bytes(self.buffer))
        self._collect(0)
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )

    def abort(self) -> None:
        """Discard the upload: S3 keeps (and bills) the parts of an upload never completed or aborted.

        Parts still queued are dropped and the one in flight is waited for, so none lands after the abort.
        """
        for part in self.pending:
            part.cancel()
        wait(self.pending)
        self.pending.clear()
        if self.upload_id is not None:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
            self.upload_id = None


def _score_into_s3(
    source: Readable,
    predictor: Predictor,
    client: Any,
    bucket: str,
    key: str,
    metadata: dict[str, str],
    part_bytes: int,
) -> BatchSummary:
    """Score `source` into s3://bucket/key. The next block is downloaded and the last part
    uploaded by two background threads while the blocks between them are scored, so S3's
    time overlaps the CPU's instead of adding to it.

    On any failure the upload is aborted and the failure raised; both threads have ended
    when this returns or raises.
    """
    with ThreadPoolExecutor(1, "batch-read") as reads, ThreadPoolExecutor(1, "batch-upload") as uploads:
        writer = _MultipartWriter(client, bucket, key, metadata, part_bytes, uploads)
        try:
            summary = score_csv_stream(_ReadAhead(source, reads), writer.write, predictor)
            writer.complete()
        except BaseException:
            try:
                writer.abort()
            except Exception as abort_error:
                # The failure that led here is the one to raise; this one only leaves parts behind.
                log_event("batch_abort_failed", logging.ERROR, output=f"s3://{bucket}/{key}", reason=repr(abort_error))
            raise
    return summary


def score_s3_object(
    bucket: str,
    key: str,
    predictor: Predictor,
    settings: BatchSettings,
    s3_client: Any,
    part_bytes: int = PART_BYTES,
    request_id: str | None = None,
) -> ObjectResult:
    """Score one uploaded CSV into its predictions object, or write its error report.

    Exactly one of the two exists afterwards: the other, stale from an earlier upload of
    the same key, is deleted. Output bytes depend only on the input and the model, so a
    redelivered event rewrites the same object. Anything unexpected (S3 failing) aborts
    the upload and propagates, so Lambda retries.
    """
    start = time.perf_counter()
    output_key = settings.output_key(key)
    report_key = settings.error_report_key(key)
    source = s3_client.get_object(Bucket=bucket, Key=key)
    metadata = {
        "source": quote(f"s3://{bucket}/{key}"),
        "source-etag": source["ETag"].strip('"'),
        "model-version": predictor.version,
    }
    try:
        summary = _score_into_s3(
            source["Body"], predictor, s3_client, settings.output_bucket, output_key, metadata, part_bytes
        )
    except BatchFileError as exc:
        log_event(
            "batch_file",
            logging.ERROR,
            request_id=request_id,
            input=f"s3://{bucket}/{key}",
            outcome="failed",
            reason=str(exc),
            model_version=predictor.version,
            output=f"s3://{settings.output_bucket}/{report_key}",
        )
        report = {
            "input": f"s3://{bucket}/{key}",
            "input_etag": metadata["source-etag"],
            "error": str(exc),
            "model_version": predictor.version,
            "output": f"s3://{settings.output_bucket}/{output_key} (not written)",
        }
        s3_client.put_object(
            Bucket=settings.output_bucket,
            Key=report_key,
            Body=json.dumps(report, indent=2, sort_keys=True).encode() + b"\n",
            ContentType="application/json",
            Metadata=metadata,
        )
        s3_client.delete_object(Bucket=settings.output_bucket, Key=output_key)
        return ObjectResult(bucket, key, "failed", report_key, error=str(exc))
    finally:
        source["Body"].close()
    s3_client.delete_object(Bucket=settings.output_bucket, Key=report_key)
    log_event(
        "batch_file",
        request_id=request_id,
        input=f"s3://{bucket}/{key}",
        outcome="scored",
        rows=summary.rows,
        rows_with_errors=summary.rows_with_errors,
        model_version=predictor.version,
        output=f"s3://{settings.output_bucket}/{output_key}",
        seconds=round(time.perf_counter() - start, 3),
    )
    return ObjectResult(bucket, key, "scored", output_key, summary.rows, summary.rows_with_errors)


def score_s3_event(
    event: dict[str, Any],
    model: LazyPredictor,
    settings: BatchSettings,
    s3_client: Any = None,
    request_id: str | None = None,
) -> list[ObjectResult]:
    """Score every object of an S3 event.

    A record that must not be scored (another bucket, a key outside the input prefix or
    one that would escape the output prefix) is logged and skipped while the others are
    scored; then ValueError names them all, so the invocation fails visibly.
    """
    settings.check()
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3")
    results: list[ObjectResult] = []
    for record in event.get("Records", []):
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])
        try:
            if bucket != settings.input_bucket:
                raise ValueError(f"bucket {bucket!r} is not the input bucket {settings.input_bucket!r}")
            settings.output_key(key)
        except ValueError as exc:
            log_event(
                "batch_file",
                logging.ERROR,
                request_id=request_id,
                input=f"s3://{bucket}/{key}",
                outcome="rejected",
                reason=str(exc),
            )
            results.append(ObjectResult(bucket, key, "rejected", None, error=str(exc)))
            continue
        results.append(score_s3_object(bucket, key, model.get(), settings, s3_client, request_id=request_id))
    rejected = [r for r in results if r.status == "rejected"]
    if rejected:
        raise ValueError("; ".join(f"s3://{r.bucket}/{r.key}: {r.error}" for r in rejected))
    return results


# ---------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chalicelib.batch",
        description="Score a CSV file with the model at ARTIFACTS_URI (default: artifacts).",
    )
    parser.add_argument("source", type=Path, help="input CSV: raw HouseTS rows or the 39 model features")
    parser.add_argument("target", type=Path, help="output CSV: the input plus predicted_price and error")
    args = parser.parse_args(argv)
    from tqdm import tqdm  # dev tool only: not in the Lambda layers

    predictor = load_predictor(os.environ.get("ARTIFACTS_URI", "artifacts"), os.environ.get("MODEL_VERSION", LATEST))
    started = time.perf_counter()
    with tqdm(total=args.source.stat().st_size, unit="B", unit_scale=True, file=sys.stderr) as bar:
        try:
            summary = score_csv_file(args.source, args.target, predictor, bar.update)
        except BatchFileError as exc:
            bar.close()
            print(f"cannot score {args.source}: {exc}", file=sys.stderr)
            return 1
    seconds = time.perf_counter() - started
    print(
        f"{summary.rows:,} rows ({summary.rows_with_errors:,} with errors) in {seconds:.1f} s "
        f"({summary.rows / seconds:,.0f} rows/s), model {summary.model_version} -> {args.target}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
