"""A CSV object split into byte ranges that end on line ends: the plan of a fanned-out run.

Each range but the last ends just after a newline found by a small ranged read near its target
size, so planning reads a few KiB per range, never the file. A newline inside a quoted field
looks the same as a record's end from there; that is told afterwards, exactly, by counting quotes
(`misframed_boundaries`): a boundary is a record boundary when the quotes before it are even in
number, which is how `framing.record_blocks` joins lines too. A run whose boundaries are not all
record boundaries is scored by one function instead (chalicelib.batch.fanout).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from chalicelib.batch.framing import MAX_RECORD_BYTES, BatchFileError
from chalicelib.batch.settings import BatchSettings, FanoutSettings, run_name

# S3 multipart limits: parts of at least 5 MiB (but the last), at most 10,000 parts.
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PARTS = 10_000
# Bytes read per look for the next line end.
WINDOW_BYTES = 64 * 1024


@dataclass(frozen=True)
class ByteRange:
    """Bytes [start, end) of the object; its output is part `index + 1` of the multipart upload."""

    index: int
    start: int
    end: int

    def to_dict(self) -> dict[str, int]:
        return {"index": self.index, "start": self.start, "end": self.end}

    @classmethod
    def from_dict(cls, value: dict[str, int]) -> ByteRange:
        return cls(int(value["index"]), int(value["start"]), int(value["end"]))


@dataclass(frozen=True)
class Plan:
    """Where the header ends and the ranges; range 0 starts at 0 and holds the header."""

    size: int
    header_end: int
    ranges: tuple[ByteRange, ...]


ReadRange = Callable[[int, int], bytes]


def line_end_after(read: ReadRange, offset: int, size: int) -> int | None:
    """The offset just past the first newline at or after `offset`; None if there is none."""
    position = offset
    while position < size:
        window = read(position, min(size, position + WINDOW_BYTES))
        found = window.find(b"\n")
        if found >= 0:
            return position + found + 1
        position += len(window)
        if position - offset > MAX_RECORD_BYTES:
            raise BatchFileError(f"a row longer than {MAX_RECORD_BYTES:,} bytes: is a quote not closed?")
    return None


def _header_end(read: ReadRange, size: int) -> int:
    """Past the header record: the first line end with an even number of quotes before it."""
    end: int | None = 0
    while True:
        end = line_end_after(read, end, size)
        if end is None or end >= size:
            raise BatchFileError("the file has no data rows after its header (or its header never ends)")
        if read(0, end).count(b'"') % 2 == 0:
            return end


def plan_ranges(read: ReadRange, size: int, range_bytes: int) -> Plan:
    """Ranges of about `range_bytes` (more if 10,000 would not cover the file), each ending on a line end.

    Every range but the last is at least MIN_PART_BYTES long, so its output (never shorter than
    its input: every record is copied and columns are appended) is a valid multipart part.
    """
    header_end = _header_end(read, size)
    data = size - header_end
    step = max(range_bytes, MIN_PART_BYTES, -(-data // MAX_PARTS))
    boundaries = [0]
    target = header_end + step
    while target < size:
        end = line_end_after(read, target - 1, size)
        if end is None or size - end < MIN_PART_BYTES:
            break  # the rest joins the last range rather than make a part that is too small
        if end - boundaries[-1] >= MIN_PART_BYTES:
            boundaries.append(end)
        target = max(target + step, end + 1)
    boundaries.append(size)
    ranges = tuple(ByteRange(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(boundaries)))
    return Plan(size, header_end, ranges)


def misframed_boundaries(quotes: Sequence[int]) -> list[int]:
    """Indexes of ranges that start inside a quoted field, given each range's count of `"` bytes."""
    odd, before = [], 0
    for index, count in enumerate(quotes):
        if before & 1:
            odd.append(index)
        before += count
    return odd


class Starter(Protocol):
    """Starts the state machine: Step Functions in Lambda, testkit's local runner in tests."""

    def start(self, name: str, run: dict[str, Any]) -> bool:
        """False when an execution of that name exists already (a redelivered event)."""
        ...


@dataclass(frozen=True)
class Run:
    """A fanned-out run: the execution's whole input. Keys and numbers only, never data (it is ~1 KiB)."""

    name: str
    bucket: str
    key: str
    etag: str
    size: int
    header_end: int
    ranges: int
    model_version: str
    output_bucket: str
    output_key: str
    report_key: str
    run_prefix: str

    @property
    def plan_key(self) -> str:
        """The ranges as a JSON array, read by the Map's ItemReader (10,000 ranges are ~500 KiB)."""
        return self.run_prefix + "plan.json"

    @property
    def summary_key(self) -> str:
        return self.run_prefix + "summary.json"

    def range_summary_key(self, index: int) -> str:
        return f"{self.run_prefix}ranges/{index:05d}.json"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"plan_key": self.plan_key}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Run:
        return cls(**{name: value[name] for name in cls.__dataclass_fields__})


def start_run(
    bucket: str,
    key: str,
    etag: str,
    size: int,
    model_version: str,
    settings: BatchSettings,
    fanout: FanoutSettings,
    client: Any,
    starter: Starter,
) -> tuple[Run, bool]:
    """Plan the upload's ranges, write the plan, start the execution; also whether this call started it.

    Every read names the event's ETag (If-Match), so a replaced object raises ClientError 412
    (`PreconditionFailed`), which the handler turns into a skipped, stale event.
    """
    quoted = etag if etag.startswith('"') else f'"{etag}"'

    def read(start: int, end: int) -> bytes:
        reply = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}", IfMatch=quoted)
        with reply["Body"] as body:
            return body.read()

    plan = plan_ranges(read, size, fanout.range_bytes)
    name = run_name(bucket, key, etag)
    run = Run(
        name,
        bucket,
        key,
        quoted,
        size,
        plan.header_end,
        len(plan.ranges),
        model_version,
        settings.output_bucket,
        settings.output_key(key),
        settings.error_report_key(key),
        settings.run_prefix(name),
    )
    body = json.dumps([r.to_dict() for r in plan.ranges], separators=(",", ":")).encode()
    client.put_object(Bucket=run.output_bucket, Key=run.plan_key, Body=body, ContentType="application/json")
    return run, starter.start(name, run.to_dict())


class StepFunctionsStarter:
    """Starts executions of the stage's state machine (its ARN follows from the function's own ARN)."""

    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self.client, self.state_machine_arn = client, state_machine_arn

    @classmethod
    def for_function(cls, function_arn: str, state_machine_name: str) -> StepFunctionsStarter:
        """`arn:aws:lambda:REGION:ACCOUNT:function:...` -> `arn:aws:states:REGION:ACCOUNT:stateMachine:NAME`."""
        import boto3

        region, account = function_arn.split(":")[3:5]
        arn = f"arn:aws:states:{region}:{account}:stateMachine:{state_machine_name}"
        return cls(boto3.client("stepfunctions", region_name=region), arn)

    def start(self, name: str, run: dict[str, Any]) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.start_execution(stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(run))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                return False
            raise
        return True
