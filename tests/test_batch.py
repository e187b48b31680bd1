"""CSV batch scoring on local streams and files, the CLI, and the settings (S3 is in test_batch_s3.py)."""

from __future__ import annotations

import csv
import io
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.batch import settings as batch_settings
from chalicelib.batch.framing import BatchFileError
from chalicelib.batch.scoring import BatchSummary, score_csv_stream
from chalicelib.contract import FEATURE_NAMES, PASSTHROUGH
from chalicelib.predictor import Predictor, load_predictor
from tests.conftest import ROOT
from tests.expected import json_features, reference_predict


@pytest.fixture(scope="module")
def predictor(artifacts_dir: Path) -> Predictor:
    return load_predictor(str(artifacts_dir))


@pytest.fixture(scope="module")
def houses(synthetic_csvs: tuple[Path, Path]) -> pd.DataFrame:
    """The synthetic HouseTS rows as text, exactly as in the file."""
    return pd.read_csv(synthetic_csvs[0], dtype=str, keep_default_na=False)


def to_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def score(data: bytes, predictor: Predictor, **options) -> tuple[list[list[str]], BatchSummary]:
    out = io.BytesIO()
    summary = score_csv_stream(io.BytesIO(data), out.write, predictor, **options)
    return list(csv.reader(io.StringIO(out.getvalue().decode()))), summary


def as_json_records(frame: pd.DataFrame) -> list[dict]:
    """The same rows as JSON API records, to check that both paths give the same answers."""
    text = {"date", "zipcode", "city", "city_full"}
    return [{k: (v if k in text else float(v)) for k, v in row.items()} for row in frame.to_dict("records")]


def test_lab_records_as_pre_encoded_csv(lab_records, predictor, artifacts_dir):
    columns = list(lab_records[0])
    frame = pd.DataFrame([[repr(r[c]) for c in columns] for r in lab_records], columns=columns)
    rows, summary = score(to_csv(frame), predictor)
    assert rows[0] == [*columns, "predicted_price", "lower", "upper", "error", "warnings"]
    assert [r[: len(columns)] for r in rows[1:]] == frame.to_numpy().tolist()
    expected = reference_predict(artifacts_dir, [[r[n] for n in FEATURE_NAMES] for r in lab_records])
    assert [float(r[-5]) for r in rows[1:]] == expected.tolist()
    assert [r[-2] for r in rows[1:]] == [""] * 5
    assert all("year: 20" in r[-1] and "outside the training period" in r[-1] for r in rows[1:])
    assert summary == BatchSummary(5, 0, predictor.version)


def test_raw_rows_score_like_the_json_api(houses, predictor):
    sample = houses.iloc[::57].reset_index(drop=True)  # lat/lng absent: looked up from city_full
    rows, summary = score(to_csv(sample), predictor)
    matrix = json_features(as_json_records(sample), predictor)
    assert [float(r[-5]) for r in rows[1:]] == predictor.predict_rows(matrix.tolist())
    assert [r[:-5] for r in rows[1:]] == sample.to_numpy().tolist()
    assert summary.rows == len(sample) and summary.rows_with_errors == 0


def test_given_lat_lng_are_used_and_empty_ones_looked_up(houses, predictor, artifacts_dir):
    sample = houses.head(3).copy()
    sample["lat"], sample["lng"] = ["40.5", "", "41"], ["-100.25", "", "-90"]
    rows, _ = score(to_csv(sample), predictor)
    records = as_json_records(sample.drop(columns=["lat", "lng"]))
    records[0] |= {"lat": 40.5, "lng": -100.25}
    records[2] |= {"lat": 41.0, "lng": -90.0}
    expected = reference_predict(artifacts_dir, json_features(records, predictor))
    assert [float(r[-5]) for r in rows[1:]] == expected.tolist()
    assert [r[-6:-8:-1] for r in rows[1:]] == [["-100.25", "40.5"], ["", ""], ["-90", "41"]]
    assert ["lat: not given" in r[-1] for r in rows[1:]] == [False, True, False]


def test_bad_rows_get_errors_and_good_rows_are_still_scored(houses, predictor):
    sample = houses.head(12).copy()
    edits = {
        1: {"median_dom": "", "Median Age": "abc"},
        2: {"median_dom": "5000"},
        3: {"bank": "inf"},
        4: {"date": "2021-13-01"},
        5: {"zipcode": "12a45"},
        6: {"city_full": "Nowhere, ZZ"},
        7: {"year": "2021"},  # contradicts the date
        8: {"sold_above_list": "nan"},
    }
    for row, cells in edits.items():
        for column, value in cells.items():
            sample.loc[row, column] = value
    lines = to_csv(sample).decode().splitlines()
    lines[10] = ""  # an empty line is a row too
    lines[11] = lines[11].rsplit(",", 3)[0]  # a short row: price and the quoted city_full cut off
    lines[12] += ",extra,cells"  # a long row
    rows, summary = score(("\n".join(lines) + "\n").encode(), predictor)
    assert len(rows) == len(lines)
    assert all(len(r) == len(rows[0]) for r in rows)
    errors = [r[-2] for r in rows[1:]]
    assert errors[1] == "median_dom: missing; Median Age: must be a number, got 'abc'"
    assert errors[2] == "median_dom: must be a number in [0, 3650], got 5000"
    assert errors[3] == "bank: must be a finite number, got inf"
    assert errors[4] == "date: must be an ISO date like 2021-07-01, got '2021-13-01'"
    assert errors[5].startswith("zipcode: a zipcode is five digits")
    assert errors[6] == (
        "lat: missing, and city_full 'Nowhere, ZZ' is not a known city to look it up from; "
        "lng: missing, and city_full 'Nowhere, ZZ' is not a known city to look it up from"
    )
    assert errors[7] == f"year: is 2021, but date {sample.loc[7, 'date']!r} is in year {sample.loc[7, 'date'][:4]}"
    assert errors[8] == "sold_above_list: must be a finite number, got 'nan'"
    assert errors[9] == "empty line"
    assert errors[10] == f"has {len(sample.columns) - 2} fields; the header has {len(sample.columns)}"
    assert errors[11].startswith(f"has {len(sample.columns) + 2} fields")
    assert rows[12][:-5] == sample.iloc[11].tolist()  # a long row keeps the header's cells
    good = [0]
    assert [i for i, e in enumerate(errors) if not e] == good
    assert all(rows[1 + i][-5] == "" for i, e in enumerate(errors) if e)
    alone, _ = score(to_csv(sample.iloc[good]), predictor)
    assert [rows[1 + i][-5] for i in good] == [r[-5] for r in alone[1:]]
    assert summary.rows == len(lines) - 1 and summary.rows_with_errors == len(lines) - 1 - len(good)


def test_pre_encoded_quarter_must_match_month(lab_records, predictor):
    record = lab_records[0] | {"quarter": 1}
    frame = pd.DataFrame([record]).astype(str)
    rows, _ = score(to_csv(frame), predictor)
    assert (rows[1][-5], rows[1][-2]) == ("", "quarter: is 1, but month 7 is in quarter 3")


def test_cells_quoting_crlf_and_bom_come_through(houses, predictor):
    sample = houses.head(4).copy()
    sample["note"] = ['say "hi"', "two\nlines", " padded ", "1.50"]
    data = b"\xef\xbb\xbf" + to_csv(sample).replace(b"\n", b"\r\n").replace(b"\r\nlines", b"\nlines")
    rows, summary = score(data, predictor)
    assert rows[0][0] == "date"
    assert [r[:-5] for r in rows[1:]] == sample.to_numpy().tolist()
    assert summary.rows == 4 and summary.rows_with_errors == 0


def test_block_size_does_not_change_the_output(houses, predictor):
    data = to_csv(houses.head(500))
    whole, small = io.BytesIO(), io.BytesIO()
    score_csv_stream(io.BytesIO(data), whole.write, predictor)
    score_csv_stream(io.BytesIO(data), small.write, predictor, block_bytes=997)
    assert small.getvalue() == whole.getvalue()


def test_header_only_gives_the_output_header(predictor):
    rows, summary = score(b"zipcode_freq,city_encoded," + ",".join(FEATURE_NAMES[:-2]).encode() + b"\n", predictor)
    assert (
        len(rows) == 1
        and rows[0][-5:] == ["predicted_price", "lower", "upper", "error", "warnings"]
        and summary.rows == 0
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"\n1,2\n", "the first line, which must be the header, is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not UTF-8"),
        (b"zipcode,city_full,date\n1,a,2021-01-01\n", "missing column(s) median_list_price"),
        (b"zipcode_freq,city_encoded\n1,2\n", "missing column(s) year, quarter, month"),
        (b"a,predicted_price\n1,2\n", "already has column(s) ['predicted_price']"),
        (";".join(FEATURE_NAMES).encode() + b"\n1;2\n", "one column holding ';': the file must be comma-separated"),
        (",".join(FEATURE_NAMES).encode() + b'\n1,"open\n2,3\n', "a quote not closed"),
    ],
)
def test_files_that_cannot_be_scored(data, message, predictor):
    with pytest.raises(BatchFileError, match=re.escape(message)):
        score_csv_stream(io.BytesIO(data), io.BytesIO().write, predictor)


@pytest.mark.parametrize("ending", [b"", b"\n", b"\r\n"])
@pytest.mark.parametrize("short_rows", [1, 3])
def test_short_rows_at_the_end_get_errors_whatever_the_line_ending(lab_records, predictor, ending, short_rows):
    lines = [",".join(FEATURE_NAMES).encode()]
    lines.append(",".join(repr(lab_records[0][n]) for n in FEATURE_NAMES).encode())
    lines += [b"1,2,3,4,5,6"] * short_rows
    for data in (b"\n".join(lines) + ending, b"\n".join([lines[0], *lines[2:]]) + ending):
        rows, summary = score(data, predictor)
        assert len(rows) - 1 == summary.rows == len(data.splitlines()) - 1
        assert summary.rows_with_errors == short_rows
        assert all(r[-2] == "has 6 fields; the header has 39" for r in rows[-short_rows:])
        assert all(len(r) == len(FEATURE_NAMES) + 5 for r in rows)


def test_a_bad_byte_after_the_first_block_fails_the_file(houses, predictor):
    data = to_csv(houses.head(200)) + b"\xff\n"
    with pytest.raises(BatchFileError, match="not UTF-8"):
        score_csv_stream(io.BytesIO(data), io.BytesIO().write, predictor, block_bytes=4096)


def test_cli_scores_a_file_like_the_library(houses, predictor, artifacts_dir, tmp_path):
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_bytes(to_csv(houses.head(300)))
    env = os.environ | {"ARTIFACTS_URI": str(artifacts_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "training.score_csv", str(source), str(target)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "300 rows (0 with errors)" in proc.stderr
    expected = io.BytesIO()
    score_csv_stream(io.BytesIO(source.read_bytes()), expected.write, predictor)
    assert target.read_bytes() == expected.getvalue()

    source.write_bytes(b"not,a,house\n1,2,3\n")
    proc = subprocess.run(
        [sys.executable, "-m", "training.score_csv", str(source), str(tmp_path / "bad.csv")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "missing column(s)" in proc.stderr
    assert not (tmp_path / "bad.csv").exists() and not (tmp_path / "bad.csv.partial").exists()


def test_app_imports_without_pandas():
    """The API function has no pandas: importing app (and so this module) must not need it."""
    code = "import sys; sys.modules['pandas'] = None; import app; assert 'pandas' not in sys.modules or True"
    env = {k: v for k, v in os.environ.items() if k not in ("INPUT_BUCKET", "OUTPUT_BUCKET")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------- settings


def test_settings_defaults_need_no_environment(monkeypatch):
    for name in ("INPUT_BUCKET", "INPUT_PREFIX", "INPUT_SUFFIX", "OUTPUT_BUCKET", "OUTPUT_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    settings = batch_settings.BatchSettings.from_environment()
    assert settings == batch_settings.BatchSettings(
        "house-prices-input", "incoming/", ".csv", "house-prices-output", "predictions/"
    )
    settings.check()
    monkeypatch.setenv("OUTPUT_PREFIX", "scored/")
    assert batch_settings.BatchSettings.from_environment().output_prefix == "scored/"


SETTINGS = batch_settings.BatchSettings("in", "incoming/", ".csv", "out", "predictions/")


@pytest.mark.parametrize(
    ("key", "output"),
    [
        ("incoming/a.csv", "predictions/a.predictions.csv"),
        ("incoming/2024/a b.csv", "predictions/2024/a b.predictions.csv"),
        ("incoming/été/ü €.csv", "predictions/été/ü €.predictions.csv"),
        ("incoming/..a/b...csv", "predictions/..a/b...predictions.csv"),
    ],
)
def test_output_key_keeps_the_relative_path(key, output):
    assert SETTINGS.output_key(key) == output
    assert SETTINGS.error_report_key(key) == output.removesuffix(".predictions.csv") + ".error.json"


@pytest.mark.parametrize(
    "key",
    [
        "incoming/../secrets.csv",
        "incoming/a/../../b.csv",
        "incoming//etc/passwd.csv",
        "incoming/a//b.csv",
        "incoming/./a.csv",
        "incoming/a\\..\\b.csv",
        "incoming/a\nb.csv",
        "incoming/.csv",
        "other/a.csv",
        "incoming/a.txt",
        "incoming/a/",
    ],
)
def test_keys_that_could_escape_the_output_prefix_are_refused(key):
    with pytest.raises(ValueError, match="key"):
        SETTINGS.output_key(key)


@pytest.mark.parametrize(
    ("input_prefix", "input_suffix", "output_prefix"),
    [
        ("incoming/", ".csv", "incoming/predictions/"),
        ("", ".csv", "predictions/"),
        ("data/", ".csv", "data/"),
        ("", "", "out/"),
        ("incoming/", ".json", "incoming/"),
        ("in", ".csv", ""),
    ],
)
def test_a_configuration_that_retriggers_itself_is_refused(input_prefix, input_suffix, output_prefix):
    with pytest.raises(ValueError, match="would trigger the handler again"):
        batch_settings.BatchSettings("b", input_prefix, input_suffix, "b", output_prefix).check()


@pytest.mark.parametrize(
    ("input_prefix", "input_suffix", "output_prefix"),
    [("incoming/", ".csv", "predictions/"), ("data/in/", ".csv", "data/out/"), ("", ".tsv", "")],
)
def test_same_bucket_is_fine_when_outputs_cannot_match(input_prefix, input_suffix, output_prefix):
    batch_settings.BatchSettings("b", input_prefix, input_suffix, "b", output_prefix).check()


# ---------------------------------------------------------------------------- any bytes (issue 9)

_cells = st.one_of(
    st.sampled_from(["", "1", "2021-07-01", "02134", "Elmford, AZ", '"', '""', "\n", "\r", ",", "nan", "inf", "1e999"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
)


def _csv_like(header: list[str]) -> st.SearchStrategy[bytes]:
    """Text that is mostly a CSV with our header: stray quotes, embedded newlines, ragged rows, odd cells."""
    row = st.lists(_cells, min_size=0, max_size=len(header) + 2).map(lambda cells: ",".join(cells))
    return st.lists(row, max_size=12).map(lambda rows: ("\n".join([",".join(header), *rows])).encode())


def _records_of(data: bytes) -> list[bytes]:
    """The input's records as the scorer frames them: what each output line must start with."""
    from chalicelib.batch.framing import record_blocks

    return [r.removesuffix(b"\r") for block in record_blocks(io.BytesIO(data), 1 << 20) for r in block]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=400),
        _csv_like(list(FEATURE_NAMES)),
        _csv_like(["zipcode", "city_full", "date", *[f.name for f in PASSTHROUGH if f.name not in ("lat", "lng")]]),
    )
)
def test_any_bytes_end_as_one_row_out_per_row_in_or_a_file_error(predictor, data):
    out = io.BytesIO()
    try:
        summary = score_csv_stream(io.BytesIO(data), out.write, predictor, block_bytes=64)
    except BatchFileError:
        return  # the whole file gets its error report
    records = _records_of(data)
    outputs = _records_of(out.getvalue())
    assert len(outputs) == len(records) == summary.rows + 1
    assert outputs[0].endswith(b",predicted_price,lower,upper,error,warnings")
    for record, output in zip(records[1:], outputs[1:], strict=True):
        appended = _APPENDED.search(output)
        assert appended, output
        # The record's own cells come first, as given (a ragged one padded or cut to the header's width).
        framing_error = appended["error"].startswith((b'"has ', b'"empty line"', b'"cannot be read as a CSV row'))
        assert output[: appended.start()] == record or framing_error
        assert (appended["prediction"] == b"") != (appended["error"] == b"")  # a prediction or an error
        if appended["prediction"]:
            assert math.isfinite(float(appended["prediction"]))


# What the scorer appends to a record: a prediction (a float's repr), then the error and warnings, quoted when given.
_APPENDED = re.compile(
    rb',(?P<prediction>[^,"]*),(?P<lower>[^,"]*),(?P<upper>[^,"]*)'
    rb',(?P<error>"(?:[^"]|"")*"|),(?P<warnings>"(?:[^"]|"")*"|)\Z',
    re.S,
)


# ---------------------------------------------------------------------------- intervals and contributions (issue 11)


def test_batch_rows_carry_the_default_interval_and_contributions_when_asked(houses, predictor, lab_records):
    sample = houses.head(40)
    rows, _ = score(to_csv(sample), predictor)
    out = io.BytesIO()
    score_csv_stream(io.BytesIO(to_csv(sample)), out.write, predictor, explain=True)
    explained = list(csv.DictReader(io.StringIO(out.getvalue().decode())))
    header = rows[0]
    assert [name for name in explained[0] if name.startswith("contrib_")] == [
        *(f"contrib_{n}" for n in FEATURE_NAMES),
        "contrib_baseline",
    ]
    for plain, row in zip(rows[1:], explained, strict=True):
        prediction, lower, upper = (float(plain[header.index(n)]) for n in ("predicted_price", "lower", "upper"))
        assert lower <= prediction <= upper
        assert (lower, upper) == predictor.intervals.interval(prediction)
        assert float(row["predicted_price"]) == prediction  # explaining changes no prediction
        total = sum(float(v) for k, v in row.items() if k.startswith("contrib_"))
        assert abs(total - prediction) <= 1e-6 * prediction
    # The JSON API explains the same row the same way.
    record = json_features(as_json_records(sample.head(1)), predictor).tolist()
    assert predictor.contributions_rows(record)[0] == [
        float(v) for k, v in explained[0].items() if k.startswith("contrib_")
    ]


def test_a_stray_quote_inside_a_cell_is_a_character_not_a_quoted_field(houses, predictor):
    """Only a quote at a field's start opens a quoted field (as for the csv module): `4"5` is a cell."""
    sample = houses.head(6).copy()
    data = to_csv(sample).decode().splitlines()
    data[2] = data[2].replace(sample.iloc[1]["median_dom"], sample.iloc[1]["median_dom"] + '"x', 1)
    data[5] = data[5].replace(sample.iloc[4]["median_dom"], sample.iloc[4]["median_dom"] + '"y', 1)
    rows, summary = score(("\n".join(data) + "\n").encode(), predictor)
    assert len(rows) == 7 and summary.rows == 6  # rows out == rows in
    errors = [r[-2] for r in rows[1:]]
    assert [bool(e) for e in errors] == [False, True, False, False, True, False]
    assert errors[1].startswith("median_dom: must be a number, got '") and '"x' in errors[1]
    assert all(r[-5] for i, r in enumerate(rows[1:]) if i not in (1, 4))
