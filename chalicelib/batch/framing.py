"""CSV bytes into complete records, a block at a time, and the fields of each record counted.

Records are split on line ends outside quoted fields; a record keeps its bytes exactly, so
the output can copy every input cell as given. Nothing here decodes or parses cells.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Protocol

import numpy as np

# A record still open after this many bytes is an unbalanced quote, not a real row.
MAX_RECORD_BYTES = 16 * 1024 * 1024
_QUOTED = re.compile(rb'"[^"]*"')


class Readable(Protocol):
    """What scoring reads from: a local file, an S3 body, or the read-ahead over one."""

    def read(self, size: int, /) -> bytes: ...


class BatchFileError(Exception):
    """A file that cannot be scored at all; the message says why, for the error report."""


# A quote means something only at the start of a field (as for the csv module and pandas): a quoted
# field runs to a quote that is not doubled (`""` is a quote inside it); whatever follows that, up to
# the next comma, is part of the field. A quote anywhere else is a character like any other, so `4"5`
# does not open anything.
_CLOSED_FIELD = re.compile(rb'(?:^|(?<=,))"(?:[^"]|"")*"(?!")')
_OPENING_FIELD = re.compile(rb'(?:^|,)"')
_FIELD_CLOSES = re.compile(rb'^(?:[^"]|"")*"(?!")')


def _ends_open(line: bytes, open_at_start: bool) -> bool:
    """Whether a quoted field is still open at the end of `line`, given whether one was open at its start."""
    if open_at_start:
        closing = _FIELD_CLOSES.match(line)
        if closing is None:
            return True
        line = line[closing.end() :]
    return _OPENING_FIELD.search(_CLOSED_FIELD.sub(b"", line)) is not None


def _close_quotes(lines: list[bytes]) -> tuple[list[bytes], bytes | None]:
    """Join physical lines into CSV records (a quoted field may hold newlines); also the open tail."""
    records: list[bytes] = []
    current: bytes | None = None
    for line in lines:
        # An even number of quotes closes whatever the line opened (quoted fields and their `""`
        # escapes come in pairs); only an odd count needs the field-by-field reading, which costs
        # microseconds a line and raw HouseTS rows all quote their city.
        if current is None and not line.count(b'"') & 1:
            records.append(line)
            continue
        still_open = _ends_open(line, current is not None)
        current = line if current is None else current + b"\n" + line
        if not still_open:
            records.append(current)
            current = None
    return records, current


def record_blocks(source: Readable, block_bytes: int) -> Iterator[list[bytes]]:
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


def field_counts(data: bytes, rows: int) -> np.ndarray | None:
    """Fields per record of a block (records joined by newlines): separators outside quoted sections, plus one.

    Counted with numpy on the whole block, not line by line: this runs on every block, and a
    per-line loop was a tenth of the time not spent predicting. None when quotes make the
    records impossible to tell apart this way; the caller then reads the block record by record.
    """
    if b'"' in data:
        data = _QUOTED.sub(b"", data)
    text = np.frombuffer(data, dtype=np.uint8)
    line_ends = np.flatnonzero(text == ord("\n"))
    if len(line_ends) != rows:
        return None
    commas_before = np.searchsorted(np.flatnonzero(text == ord(",")), line_ends)
    return np.diff(commas_before, prepend=0) + 1
