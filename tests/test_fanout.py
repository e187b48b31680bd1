"""Scoring in byte ranges over the generated state machine, on the moto server with the local runner.

CI runs ~200k rows in 8 ranges; `python -m bench.fanout --rows 3000000` runs the same rig at full size.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.batch.ranges import MIN_PART_BYTES, ByteRange, misframed_boundaries, plan_ranges
from chalicelib.batch.settings import BatchSettings, run_name
from chalicelib.predictor import Predictor, load_predictor
from testkit.fanout import csv_of_rows, fanout_rig

ROWS = 200_000
RANGES = 8


@pytest.fixture(scope="module")
def predictor(artifacts_dir: Path) -> Predictor:
    return load_predictor(str(artifacts_dir))


@pytest.fixture(scope="module")
def big_csv(synthetic_csvs: tuple[Path, Path]) -> bytes:
    return csv_of_rows(synthetic_csvs[0].read_bytes(), ROWS)


@pytest.fixture
def settings(s3, bucket) -> BatchSettings:
    s3.create_bucket(Bucket=bucket + "-out")
    return BatchSettings(bucket, "incoming/", ".csv", bucket + "-out", "predictions/")


def keys(s3, bucket: str, prefix: str = "") -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def uploads(s3, bucket: str) -> list[dict]:
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_fanned_out_output_is_byte_identical_and_a_redelivery_starts_nothing(s3, settings, predictor, big_csv):
    range_bytes = len(big_csv) // RANGES + 1
    rig = fanout_rig(s3, settings, predictor, range_bytes, threads=4)
    etag = rig.upload("incoming/big.csv", big_csv)

    first = rig.deliver("incoming/big.csv", etag, len(big_csv))
    again = rig.deliver("incoming/big.csv", etag, len(big_csv))

    assert [r.status for r in first + again] == ["fanned_out", "fanned_out"]
    assert len(rig.runner.executions) == 1
    (execution,) = rig.runner.executions.values()
    assert execution.status == "SUCCEEDED", execution.error
    assert execution.name == run_name(settings.input_bucket, "incoming/big.csv", etag)
    fanned = rig.output("incoming/big.csv")
    run = settings.run_prefix(execution.name)
    plan = json.loads(s3.get_object(Bucket=settings.output_bucket, Key=run + "plan.json")["Body"].read())
    assert len(plan) == RANGES
    summary = json.loads(s3.get_object(Bucket=settings.output_bucket, Key=run + "summary.json")["Body"].read())
    assert summary["rows"] == ROWS

    single = rig.deliver("incoming/big.csv", etag, len(big_csv), fan_out=False)
    assert single[0].status == "scored"
    assert fanned == rig.output("incoming/big.csv")
    assert fanned.count(b"\n") == ROWS + 1  # rows out == rows in, plus the header
    assert uploads(s3, settings.output_bucket) == []


def test_one_failing_worker_aborts_the_upload_and_writes_the_report(s3, settings, predictor, big_csv):
    data = big_csv[: len(big_csv) // 4]
    data = data[: data.rindex(b"\n") + 1]
    rig = fanout_rig(s3, settings, predictor, MIN_PART_BYTES, threads=2, failing_range=1)
    etag = rig.upload("incoming/part.csv", data)

    (result,) = rig.deliver("incoming/part.csv", etag, len(data))

    (execution,) = rig.runner.executions.values()
    assert result.status == "fanned_out" and execution.status == "FAILED"
    assert keys(s3, settings.output_bucket, "predictions/part") == ["predictions/part.error.json"]
    report = json.loads(s3.get_object(Bucket=settings.output_bucket, Key="predictions/part.error.json")["Body"].read())
    assert "range 1: the worker was killed" in report["error"]
    assert report["input_etag"] == etag.strip('"')
    assert uploads(s3, settings.output_bucket) == []


def test_newlines_inside_quoted_fields_fall_back_to_one_function(s3, settings, predictor, big_csv):
    header, _, body = big_csv[: 2 * MIN_PART_BYTES + 100_000].partition(b"\n")
    rows = body.split(b"\n")[:-1]
    assert header.endswith(b"city_full") and all(r.endswith(b'"') for r in rows)
    # Rows around where the range boundary will be looked for get a line end inside their last field
    # (city_full, quoted), so the first line end after the target is inside a quoted field.
    target, offset, quoted = len(header) + 1 + MIN_PART_BYTES, len(header) + 1, []
    for row in rows:
        quoted.append(row[:-1] + b'\nx"' if abs(offset - target) < 5_000 else row)
        offset += len(row) + 1
    data = header + b"\n" + b"\n".join(quoted) + b"\n"
    rig = fanout_rig(s3, settings, predictor, MIN_PART_BYTES, threads=2)
    etag = rig.upload("incoming/quoted.csv", data)

    rig.deliver("incoming/quoted.csv", etag, len(data))

    (execution,) = rig.runner.executions.values()
    assert execution.status == "SUCCEEDED", execution.error
    assert execution.output["finish"]["outcome"] == "misframed"
    fanned = rig.output("incoming/quoted.csv")
    rig.deliver("incoming/quoted.csv", etag, len(data), fan_out=False)
    assert fanned == rig.output("incoming/quoted.csv")
    assert uploads(s3, settings.output_bucket) == []


def test_ranges_end_on_line_ends_and_cover_the_file():
    data = b"h1,h2\n" + b"".join(b"%d,%s\n" % (i, b"x" * (i % 50)) for i in range(400_000))

    plan = plan_ranges(lambda a, b: data[a:b], len(data), MIN_PART_BYTES)

    assert plan.header_end == 6
    assert plan.ranges[0].start == 0 and plan.ranges[-1].end == len(data)
    for before, after in zip(plan.ranges, plan.ranges[1:], strict=False):
        assert before.end == after.start and data[before.end - 1 : before.end] == b"\n"
        assert before.end - before.start >= MIN_PART_BYTES
    assert len(plan.ranges) == len(data) // MIN_PART_BYTES


def test_misframed_boundaries_are_those_after_an_odd_number_of_quotes():
    assert misframed_boundaries([2, 0, 4]) == []
    assert misframed_boundaries([1, 1, 0, 3, 0]) == [1, 4]
    assert ByteRange.from_dict(ByteRange(3, 10, 20).to_dict()) == ByteRange(3, 10, 20)
