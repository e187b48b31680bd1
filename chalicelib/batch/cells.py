"""A CSV block's cells into `pipeline.Columns`: the batch scorer's input adapter.

What is particular to CSV lives here: the header (which kind of file, where each column is),
records with too few or too many fields, blank lines, empty cells (absent values), text that is
not a number. pandas parses a block's numbers in C; a block pandas cannot read is read record
by record with the csv module instead, so no content makes scoring raise. The checks
themselves are `chalicelib.pipeline`'s, the same as the JSON API's.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from chalicelib.batch.framing import BatchFileError, field_counts
from chalicelib.contract import FEATURE_NAMES, IDENTIFIERS, LOCATION, PASSTHROUGH, is_pre_encoded
from chalicelib.pipeline import Columns, Problem, number_problem

# Appended to every row: the prediction, its interval at the model's default level (empty for
# a model without calibrated intervals), what is wrong, what is doubtful.
OUTPUT_COLUMNS = ("predicted_price", "lower", "upper", "error", "warnings")
# Appended after those when a file asks for explanations: each feature's contribution, then the baseline.
CONTRIBUTION_COLUMNS = (*(f"contrib_{name}" for name in FEATURE_NAMES), "contrib_baseline")
_BOM = b"\xef\xbb\xbf"
_LOCATION_NAMES = tuple(f.name for f in LOCATION)
# Columns a raw CSV must have; lat/lng may be looked up from the city instead.
_GIVEN_NAMES = tuple(f.name for f in PASSTHROUGH if f not in LOCATION)
_OPTIONAL_RAW = ("year", "quarter", "month", "date", *_LOCATION_NAMES)


@dataclass(frozen=True)
class Layout:
    """What the header says: the output header and where each column the model reads is."""

    header: bytes
    width: int
    encoded: bool
    positions: dict[str, int]

    @classmethod
    def of(cls, record: bytes) -> Layout:
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
        clash = [n for n in (*OUTPUT_COLUMNS, *CONTRIBUTION_COLUMNS) if n in names]
        if clash:
            raise BatchFileError(f"the input already has column(s) {clash}: is it an output file?")
        encoded = is_pre_encoded(names)
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
        optional = ("date",) if encoded else _OPTIONAL_RAW
        read = dict.fromkeys((*needed, *(n for n in optional if n in names)))
        twice = [n for n in read if names.count(n) > 1]
        if twice:
            raise BatchFileError(f"column(s) {', '.join(twice)} appear more than once")
        return cls(record, len(names), encoded, {n: names.index(n) for n in read})

    def output_header(self, explain: bool) -> bytes:
        appended = (*OUTPUT_COLUMNS, *CONTRIBUTION_COLUMNS) if explain else OUTPUT_COLUMNS
        return self.header + ("," + ",".join(appended) + "\n").encode()


@dataclass
class Block:
    """One block read: its records (short ones padded, long ones cut, so columns line up in the
    output too), its columns for the pipeline, and the rows that could not be read as rows."""

    records: list[bytes]
    columns: Columns
    unreadable_rows: dict[int, str]


def read_block(records: list[bytes], layout: Layout) -> Block:
    """The block's columns; raises BatchFileError only for a block that is not UTF-8 text."""
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
    counts = field_counts(data, n)
    if counts is not None:
        fitted, unreadable = list(records), {}
        for row in np.flatnonzero(counts != layout.width).tolist():
            fitted[row], unreadable[row] = _fit_width(records[row], int(counts[row]), layout.width)
        frame = _parse(b"\n".join([*fitted, b""]) if unreadable else data, n, layout)
        if frame is not None:
            return Block(fitted, _columns(frame, n, layout), unreadable)
    # Quotes that pandas and the field count read differently: one record at a time.
    fitted, frame, unreadable = _parse_by_record(records, layout)
    return Block(fitted, _columns(frame, n, layout), unreadable)


def _fit_width(record: bytes, fields: int, width: int) -> tuple[bytes, str]:
    """A short row padded with empty cells, a long one cut after `width` cells, and what was wrong."""
    if fields == 1 and not record.strip(b", \t"):
        return record + b"," * (width - 1), "empty line"
    message = f"has {fields} fields; the header has {width}"
    if fields < width:
        return record + b"," * (width - fields), message
    try:
        cells = next(csv.reader([record.decode("utf-8")]))
    except csv.Error:
        return record, message + " (and cannot be read as a CSV row)"  # kept as given: nothing to line up
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells[:width])
    return out.getvalue().encode(), message + f" (cells after the {width}th are left out here)"


def _parse(data: bytes, rows: int, layout: Layout) -> pd.DataFrame | None:
    """The block's columns, numbers parsed by pandas in C; None if pandas reads other rows than we framed."""
    options: dict[str, Any] = {
        "header": None,
        "names": range(layout.width),
        "usecols": sorted(layout.positions.values()),
        "keep_default_na": False,
        "skip_blank_lines": False,
        "encoding": "utf-8",
        "quoting": csv.QUOTE_MINIMAL,
    }
    texts = {layout.positions[n] for n in IDENTIFIERS if n in layout.positions}
    numeric = [p for p in options["usecols"] if p not in texts]
    try:
        try:
            # Fast path: the C parser converts numbers itself, and only an empty cell is NaN.
            frame = pd.read_csv(
                io.BytesIO(data),
                dtype={p: "float64" if p in numeric else str for p in options["usecols"]},
                na_values={p: [""] for p in numeric},
                **options,
            )
        except ValueError:
            # Some cell is not a number: read text, so each cell can say why.
            frame = pd.read_csv(io.BytesIO(data), dtype=str, **options)
    except (pd.errors.ParserError, ValueError, csv.Error, OverflowError):
        return None
    return frame if len(frame) == rows else None


def _parse_by_record(records: list[bytes], layout: Layout) -> tuple[list[bytes], pd.DataFrame, dict[int, str]]:
    """The slow, sure way: each record through the csv module; a record it cannot read gets a row error."""
    cells: list[list[str]] = []
    unreadable: dict[int, str] = {}
    fitted: list[bytes] = []
    for row, record in enumerate(records):
        try:
            fields = next(csv.reader([record.decode("utf-8")]), [""])
        except csv.Error as exc:
            unreadable[row] = f"cannot be read as a CSV row: {exc}"
            fields = [""] * layout.width
        if len(fields) != layout.width and row not in unreadable:
            record, unreadable[row] = _fit_width(record, len(fields), layout.width)
            fields = (fields + [""] * layout.width)[: layout.width]
        cells.append(fields)
        fitted.append(record)
    frame = pd.DataFrame({p: [c[p] for c in cells] for p in sorted(layout.positions.values())}, dtype=object)
    return fitted, frame, unreadable


def _columns(frame: pd.DataFrame, n: int, layout: Layout) -> Columns:
    numbers: dict[str, np.ndarray] = {}
    absent: dict[str, list[int]] = {}
    unreadable: list[Problem] = []
    everywhere = list(range(n))
    for name in FEATURE_NAMES:
        position = layout.positions.get(name)
        if position is None:
            numbers[name] = np.full(n, np.nan)
            absent[name] = everywhere
            continue
        cells = frame[position]
        if cells.dtype == np.float64:
            numbers[name] = cells.to_numpy(np.float64)
            absent[name] = np.flatnonzero(np.isnan(numbers[name])).tolist()
            continue
        text = cells.fillna("").astype(str)
        values = pd.to_numeric(text, errors="coerce").to_numpy(np.float64, copy=True)
        empty = (text.str.strip() == "").to_numpy(bool)
        values[empty] = np.nan
        numbers[name] = values
        absent[name] = np.flatnonzero(empty).tolist()
        for row in np.flatnonzero(np.isnan(values) & ~empty).tolist():
            unreadable.append(Problem.of(row, name, number_problem(str(text.iat[row]))))
    texts = {
        name: [t if t.strip() else None for t in frame[layout.positions[name]].fillna("").astype(str).tolist()]
        for name in IDENTIFIERS
        if name in layout.positions
    }
    return Columns(n, layout.encoded, numbers, absent, texts, unreadable)
