"""The S3 batch handler against a real (moto) S3 server: through Chalice's test client and directly."""

from __future__ import annotations

import io
import json
import shutil
import threading
import time
import tracemalloc
from pathlib import Path
from urllib.parse import quote_plus

import numpy as np
import pandas as pd
import pytest
from botocore.exceptions import ClientError
from chalice.test import Client

import app as app_module
from chalicelib.batch import handler
from chalicelib.batch.scoring import score_csv_stream
from chalicelib.batch.settings import BatchSettings
from chalicelib.predictor import LazyPredictor, Predictor, load_predictor
from testkit.events import s3_put_event, s3_put_record
from tests.conftest import ROOT
from training.publish import publish
from training.train import features_of


@pytest.fixture(scope="module")
def predictor(artifacts_dir: Path) -> Predictor:
    return load_predictor(str(artifacts_dir))


@pytest.fixture(scope="module")
def houses_csv(synthetic_csvs: tuple[Path, Path]) -> bytes:
    return synthetic_csvs[0].read_bytes()


@pytest.fixture
def settings(s3, bucket) -> BatchSettings:
    s3.create_bucket(Bucket=bucket + "-out")
    return BatchSettings(bucket, "incoming/", ".csv", bucket + "-out", "predictions/")


@pytest.fixture
def model(predictor) -> LazyPredictor:
    return LazyPredictor(lambda: predictor)


def local_output(data: bytes, predictor: Predictor) -> bytes:
    out = io.BytesIO()
    score_csv_stream(io.BytesIO(data), out.write, predictor)
    return out.getvalue()


def keys(s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def read(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_handler_through_the_chalice_client_end_to_end(
    s3, s3_server, settings, artifacts_dir, houses_csv, predictor, tmp_path, monkeypatch
):
    """Published artifacts on S3, an upload, the app's own handler: output equals local scoring."""
    publish(artifacts_dir, settings.input_bucket, "models/house-prices", s3, s3_server.reader())
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    config["stages"]["local"]["environment_variables"] |= {
        "ARTIFACTS_URI": f"s3://{settings.input_bucket}/models/house-prices",
        "INPUT_BUCKET": settings.input_bucket,
        "OUTPUT_BUCKET": settings.output_bucket,
    }
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    shutil.copy(ROOT / "app.py", tmp_path / "app.py")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.url)
    # app.py read its settings and made its model at import; a fresh container reads them now.
    monkeypatch.setattr(app_module, "batch_settings", settings)
    monkeypatch.setattr(app_module, "model", LazyPredictor.from_environment())
    key = "incoming/2024/a b ü €.csv"
    s3.put_object(Bucket=settings.input_bucket, Key=key, Body=houses_csv)
    with Client(app_module.app, stage_name="local", project_dir=str(tmp_path)) as client:
        s3_event = client.events.generate_s3_event(bucket=settings.input_bucket, key=quote_plus(key))
        etag = s3.head_object(Bucket=settings.input_bucket, Key=key)["ETag"].strip('"')
        s3_event["Records"][0]["s3"]["object"]["eTag"] = etag  # Chalice's generator has a fixed one
        client.lambda_.invoke("score_uploaded_csv", s3_event)
    assert keys(s3, settings.output_bucket) == ["predictions/2024/a b ü €.predictions.csv"]
    output = s3.get_object(Bucket=settings.output_bucket, Key="predictions/2024/a b ü €.predictions.csv")
    assert output["Body"].read() == local_output(houses_csv, predictor)
    assert output["Metadata"]["model-version"] == predictor.version


def test_redelivery_rewrites_the_same_single_object(s3, settings, model, houses_csv):
    s3.put_object(Bucket=settings.input_bucket, Key="incoming/a.csv", Body=houses_csv)
    first = handler.score_s3_event(s3_put_event(settings.input_bucket, "incoming/a.csv"), model, settings, s3)
    before = read(s3, settings.output_bucket, "predictions/a.predictions.csv")
    second = handler.score_s3_event(s3_put_event(settings.input_bucket, "incoming/a.csv"), model, settings, s3)
    assert first == second
    assert first[0].status == "scored" and first[0].rows == houses_csv.count(b"\n") - 1
    assert keys(s3, settings.output_bucket) == ["predictions/a.predictions.csv"]
    assert read(s3, settings.output_bucket, "predictions/a.predictions.csv") == before
    assert not s3.list_multipart_uploads(Bucket=settings.output_bucket).get("Uploads")


def test_every_record_of_an_event_is_scored(s3, settings, model, houses_csv, predictor):
    lines = houses_csv.splitlines(keepends=True)
    bodies = {"incoming/one.csv": b"".join(lines[:50]), "incoming/x/two.csv": b"".join([lines[0], *lines[50:80]])}
    for key, body in bodies.items():
        s3.put_object(Bucket=settings.input_bucket, Key=key, Body=body)
    results = handler.score_s3_event(s3_put_event(settings.input_bucket, *bodies), model, settings, s3)
    assert [(r.key, r.rows) for r in results] == [("incoming/one.csv", 49), ("incoming/x/two.csv", 30)]
    assert read(s3, settings.output_bucket, "predictions/one.predictions.csv") == local_output(
        bodies["incoming/one.csv"], predictor
    )
    assert read(s3, settings.output_bucket, "predictions/x/two.predictions.csv") == local_output(
        bodies["incoming/x/two.csv"], predictor
    )


def test_bad_rows_are_reported_in_the_output(s3, settings, model, houses_csv):
    lines = houses_csv.decode().splitlines()[:6]
    lines[2] = lines[2].replace(",2012,", ",twenty,", 1)  # not a number, even beside a date
    lines[4] = "not-a-date," + lines[4].split(",", 1)[1]
    s3.put_object(Bucket=settings.input_bucket, Key="incoming/bad.csv", Body=("\n".join(lines) + "\n").encode())
    [result] = handler.score_s3_event(s3_put_event(settings.input_bucket, "incoming/bad.csv"), model, settings, s3)
    frame = pd.read_csv(io.BytesIO(read(s3, settings.output_bucket, "predictions/bad.predictions.csv")), dtype=str)
    assert len(frame) == 5 == result.rows
    assert frame["error"].fillna("").tolist()[1] == "year: must be a number, got 'twenty'"
    assert frame["error"].fillna("").tolist()[3] == "date: must be an ISO date like 2021-07-01, got 'not-a-date'"
    assert result.rows_with_errors == frame["error"].notna().sum() == 2
    assert frame["predicted_price"].isna().tolist() == frame["error"].notna().tolist()


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\x00", "not UTF-8"), (b"city,price\nx,1\n", "missing column(s)")],
)
def test_a_file_that_cannot_be_scored_gets_an_error_report(s3, settings, model, houses_csv, body, message, logged):
    key = "incoming/x.csv"
    s3.put_object(Bucket=settings.input_bucket, Key=key, Body=houses_csv)
    handler.score_s3_event(s3_put_event(settings.input_bucket, key), model, settings, s3)
    s3.put_object(Bucket=settings.input_bucket, Key=key, Body=body)  # the same key, now broken
    [result] = handler.score_s3_event(s3_put_event(settings.input_bucket, key), model, settings, s3)
    assert result.status == "failed" and result.output_key == "predictions/x.error.json"
    assert keys(s3, settings.output_bucket) == ["predictions/x.error.json"]  # the stale output is gone
    report = json.loads(read(s3, settings.output_bucket, "predictions/x.error.json"))
    assert message in report["error"] and report["input"] == f"s3://{settings.input_bucket}/{key}"
    failed = [line for line in logged if line["event"] == "batch_file" and line["outcome"] == "failed"]
    assert failed and message in failed[-1]["reason"] and failed[-1]["input"] == report["input"]
    s3.put_object(Bucket=settings.input_bucket, Key=key, Body=houses_csv)  # fixed again
    handler.score_s3_event(s3_put_event(settings.input_bucket, key), model, settings, s3)
    assert keys(s3, settings.output_bucket) == ["predictions/x.predictions.csv"]


def test_a_configuration_that_retriggers_itself_writes_nothing(s3, bucket, model, houses_csv):
    settings = BatchSettings(bucket, "incoming/", ".csv", bucket, "incoming/scored/")
    s3.put_object(Bucket=bucket, Key="incoming/a.csv", Body=houses_csv)
    with pytest.raises(ValueError, match="would trigger the handler again"):
        handler.score_s3_event(s3_put_event(bucket, "incoming/a.csv"), model, settings, s3)
    assert keys(s3, bucket) == ["incoming/a.csv"]


def test_escaping_keys_are_refused_and_the_rest_scored(s3, settings, model, houses_csv, logged):
    s3.put_object(Bucket=settings.input_bucket, Key="incoming/ok.csv", Body=houses_csv)
    s3.put_object(Bucket=settings.input_bucket, Key="incoming/../escape.csv", Body=houses_csv)
    bad = s3_put_event(settings.input_bucket, "incoming/../escape.csv", "incoming/ok.csv")
    bad["Records"].append(s3_put_event("some-other-bucket", "incoming/ok.csv")["Records"][0])
    results = handler.score_s3_event(bad, model, settings, s3)
    assert [r.status for r in results] == ["rejected", "scored", "rejected"]
    assert "'..' path segment" in results[0].error and "not the input bucket" in results[2].error
    rejected = [line for line in logged if line["event"] == "batch_file" and line["outcome"] == "rejected"]
    assert [line["input"] for line in rejected] == [
        f"s3://{settings.input_bucket}/incoming/../escape.csv",
        "s3://some-other-bucket/incoming/ok.csv",
    ]
    assert keys(s3, settings.output_bucket) == ["predictions/ok.predictions.csv"]


def test_a_failed_upload_is_aborted_and_raised(s3, settings, predictor, houses_csv):
    """Output of several parts; S3 refuses to complete it: no upload may be left behind."""
    s3.put_object(Bucket=settings.input_bucket, Key="incoming/big.csv", Body=houses_csv * 2)

    def refuse(**_) -> None:
        raise ConnectionError("S3 went away")

    s3.meta.events.register("before-call.s3.CompleteMultipartUpload", refuse)
    with pytest.raises(ConnectionError):
        handler.score_s3_object(settings.input_bucket, "incoming/big.csv", predictor, settings, s3, 5 * 1024 * 1024)
    s3.meta.events.unregister("before-call.s3.CompleteMultipartUpload", refuse)
    assert not s3.list_multipart_uploads(Bucket=settings.output_bucket).get("Uploads")
    assert keys(s3, settings.output_bucket) == ["predictions/big.error.json"]  # no output; the failure said


def batch_threads() -> list[str]:
    """Threads the batch code started and has not ended (ThreadPoolExecutor names them prefix_N)."""
    return [t.name for t in threading.enumerate() if t.name.startswith("batch-")]


def test_a_multipart_output_is_the_local_output_in_order(s3, settings, predictor, houses_csv):
    """Parts uploaded in the background while later blocks are scored still make the same bytes, in order."""
    lines = houses_csv.splitlines(keepends=True)
    lines[100] = lines[100].replace(b",", b",not-a-number,", 1)  # bad rows in every copy: in both blocks
    lines[-5] = b"\n"
    body = b"".join([*lines, *lines[1:], *lines[1:]])
    s3.put_object(Bucket=settings.input_bucket, Key="incoming/parts.csv", Body=body)
    result = handler.score_s3_object(
        settings.input_bucket, "incoming/parts.csv", predictor, settings, s3, 5 * 1024 * 1024
    )
    assert result.status == "scored" and result.rows_with_errors == 6
    output = s3.get_object(Bucket=settings.output_bucket, Key="predictions/parts.predictions.csv")
    assert int(output["ETag"].strip('"').rsplit("-", 1)[1]) >= 3  # really several parts
    assert output["Body"].read() == local_output(body, predictor)
    assert batch_threads() == []


def test_an_upload_failing_in_the_background_is_raised_in_the_caller(
    s3, s3_server, settings, predictor, houses_csv, logged
):
    """The output bucket disappears after the first part: the next part fails in the upload
    thread, and that S3 error (not the failed abort after it) reaches the caller."""
    s3.put_object(Bucket=settings.input_bucket, Key="incoming/big.csv", Body=houses_csv * 3)
    other = s3_server.client()
    deleted = False

    def delete_output_bucket(**_) -> None:
        nonlocal deleted
        if not deleted:
            # From a thread of its own: on the upload thread's stack the s3 audit would count it as the code's call.
            deleter = threading.Thread(target=other.delete_bucket, kwargs={"Bucket": settings.output_bucket})
            deleter.start()
            deleter.join()
            deleted = True

    s3.meta.events.register("after-call.s3.UploadPart", delete_output_bucket)
    try:
        with pytest.raises(ClientError) as raised:
            handler.score_s3_object(settings.input_bucket, "incoming/big.csv", predictor, settings, s3, 5 * 1024 * 1024)
    finally:
        s3.meta.events.unregister("after-call.s3.UploadPart", delete_output_bucket)
    assert raised.value.operation_name == "UploadPart"
    assert raised.value.response["Error"]["Code"] == "NoSuchBucket"
    assert any(line["event"] == "batch_abort_failed" for line in logged)
    assert batch_threads() == []


def test_a_part_failing_midway_aborts_the_upload(s3, settings, predictor, houses_csv):
    """Parts already uploaded are discarded with the upload, none is left behind, no thread lives on."""
    s3.put_object(Bucket=settings.input_bucket, Key="incoming/big.csv", Body=houses_csv * 3)
    parts = 0

    def fail_the_second_part(**_) -> None:
        nonlocal parts
        parts += 1
        if parts == 2:
            raise ConnectionError("S3 went away")

    s3.meta.events.register("before-call.s3.UploadPart", fail_the_second_part)
    try:
        with pytest.raises(ConnectionError):
            handler.score_s3_object(settings.input_bucket, "incoming/big.csv", predictor, settings, s3, 5 * 1024 * 1024)
    finally:
        s3.meta.events.unregister("before-call.s3.UploadPart", fail_the_second_part)
    assert parts == 2  # the first part had been uploaded, nothing after the failure
    assert not s3.list_multipart_uploads(Bucket=settings.output_bucket).get("Uploads")
    assert keys(s3, settings.output_bucket) == ["predictions/big.error.json"]  # no output; the failure said
    assert batch_threads() == []


def big_csv(houses_csv: bytes, rows: int) -> bytes:
    lines = houses_csv.splitlines(keepends=True)
    body = lines[1:] * (rows // (len(lines) - 1) + 1)
    return b"".join([lines[0], *body[:rows]])


@pytest.mark.slow
def test_200k_rows_s3_to_s3_and_bounded_memory(s3, settings, model, predictor, houses_csv, capsys):
    rows = 200_000
    data = big_csv(houses_csv, rows)
    s3.put_object(Bucket=settings.input_bucket, Key="incoming/big.csv", Body=data)

    started = time.perf_counter()
    [result] = handler.score_s3_event(s3_put_event(settings.input_bucket, "incoming/big.csv"), model, settings, s3)
    s3_seconds = time.perf_counter() - started
    assert result.rows == rows and result.rows_with_errors == 0
    body = s3.get_object(Bucket=settings.output_bucket, Key="predictions/big.predictions.csv")["Body"]
    assert sum(chunk.count(b"\n") for chunk in body.iter_chunks(1 << 20)) == rows + 1

    # Memory: scoring holds a few blocks, not the file (the 60 MB input here is outside the measurement).
    written = 0

    def count(chunk: bytes) -> None:
        nonlocal written
        written += len(chunk)

    source = io.BytesIO(data)
    tracemalloc.start()
    score_csv_stream(source, count, predictor)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert written > len(data) and peak < 120 * 1024 * 1024, peak

    started = time.perf_counter()
    source.seek(0)
    score_csv_stream(source, count, predictor)
    local_seconds = time.perf_counter() - started
    frame = pd.read_csv(io.BytesIO(data), dtype={"zipcode": str})
    frame["month"] = frame["date"].str[5:7].astype(int)
    frame[["lat", "lng"]] = np.array([predictor.encoders.locations.lookup(c) for c in frame["city_full"]])
    matrix = features_of(frame, predictor.encoders)
    started = time.perf_counter()
    predictor.predict_matrix(np.ascontiguousarray(matrix), len(matrix))
    predict_seconds = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\n200k rows: local {rows / local_seconds:,.0f} rows/s, S3-to-S3 {rows / s3_seconds:,.0f} rows/s, "
            f"Booster.predict {rows / predict_seconds:,.0f} rows/s, "
            f"local/predict {predict_seconds / local_seconds:.0%}; tracemalloc peak {peak / 2**20:.0f} MiB"
        )


# ---------------------------------------------------------------------------- ordering and redelivery (issue 9)


def put(s3, bucket: str, key: str, body: bytes) -> str:
    return s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]


def test_test_events_non_create_events_and_empty_events_are_logged_and_ignored(s3, settings, model, logged):
    assert handler.score_s3_event({"Event": "s3:TestEvent", "Bucket": settings.input_bucket}, model, settings, s3) == []
    assert handler.score_s3_event({"Records": []}, model, settings, s3) == []
    removed = s3_put_event(settings.input_bucket, "incoming/a.csv")
    removed["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    [result] = handler.score_s3_event(removed, model, settings, s3)
    assert result.status == "ignored"
    ignored = [line for line in logged if line["event"] == "batch_event_ignored"]
    assert [line["reason"] for line in ignored] == ["an s3:TestEvent", "no Records"]
    assert keys(s3, settings.output_bucket) == []


def test_an_older_event_never_overwrites_a_newer_uploads_output(s3, settings, model, predictor, houses_csv, logged):
    key = "incoming/a.csv"
    old_data, new_data = houses_csv, b"".join(houses_csv.splitlines(True)[:-1])
    old_etag = put(s3, settings.input_bucket, key, old_data)
    new_etag = put(s3, settings.input_bucket, key, new_data)
    bucket = settings.input_bucket
    # The newer upload's event, then the older one's, delivered late: the newer output stays.
    [newer] = handler.score_s3_event({"Records": [s3_put_record(bucket, key, etag=new_etag)]}, model, settings, s3)
    [older] = handler.score_s3_event({"Records": [s3_put_record(bucket, key, etag=old_etag)]}, model, settings, s3)
    assert (newer.status, older.status) == ("scored", "skipped")
    assert "was replaced after this event" in older.error
    assert read(s3, settings.output_bucket, "predictions/a.predictions.csv") == local_output(new_data, predictor)
    assert any(line.get("outcome") == "skipped" for line in logged)


def test_an_event_for_a_deleted_object_is_skipped(s3, settings, model, houses_csv):
    key = "incoming/gone.csv"
    etag = put(s3, settings.input_bucket, key, houses_csv)
    s3.delete_object(Bucket=settings.input_bucket, Key=key)
    [result] = handler.score_s3_event(
        {"Records": [s3_put_record(settings.input_bucket, key, etag=etag)]}, model, settings, s3
    )
    assert result.status == "skipped" and "was deleted" in result.error
    assert keys(s3, settings.output_bucket) == []


def test_an_input_replaced_while_it_is_scored_leaves_no_output_from_the_old_one(
    s3, s3_server, settings, model, houses_csv
):
    key = "incoming/racing.csv"
    etag = put(s3, settings.input_bucket, key, houses_csv)
    other = s3_server.client()

    def replace_first(**_kwargs):
        """S3 receives a newer upload just before the handler re-checks (another uploader: another thread)."""
        body = houses_csv + houses_csv.splitlines(True)[1]
        uploader = threading.Thread(
            target=other.put_object, kwargs={"Bucket": settings.input_bucket, "Key": key, "Body": body}
        )
        uploader.start()
        uploader.join()

    s3.meta.events.register_first("before-call.s3.HeadObject", replace_first)
    try:
        [result] = handler.score_s3_event(
            {"Records": [s3_put_record(settings.input_bucket, key, etag=etag)]}, model, settings, s3
        )
    finally:
        s3.meta.events.unregister("before-call.s3.HeadObject", replace_first)
    assert result.status == "skipped" and "replaced while it was scored" in result.error
    assert keys(s3, settings.output_bucket) == []
    assert s3.list_multipart_uploads(Bucket=settings.output_bucket).get("Uploads", []) == []


def test_a_key_too_long_to_map_gets_a_report_under_a_short_deterministic_key(s3, settings, model, houses_csv):
    key = "incoming/" + "k" * (1024 - len("incoming/") - len(".csv")) + ".csv"  # 1,024 bytes: as long as S3 allows
    put(s3, settings.input_bucket, key, houses_csv)
    results = [
        handler.score_s3_event(s3_put_event(settings.input_bucket, key), model, settings, s3)[0] for _ in range(2)
    ]
    assert [r.status for r in results] == ["rejected", "rejected"]
    assert results[0].output_key == results[1].output_key == settings.long_key_report(key)
    assert len(results[0].output_key.encode()) < 100
    report = json.loads(read(s3, settings.output_bucket, results[0].output_key))
    assert (
        report["input"] == f"s3://{settings.input_bucket}/{key}" and "longer than S3's 1,024 bytes" in report["error"]
    )
    assert keys(s3, settings.output_bucket) == [results[0].output_key]


def test_a_malformed_record_does_not_stop_the_others(s3, settings, model, houses_csv):
    put(s3, settings.input_bucket, "incoming/ok.csv", houses_csv)
    event = s3_put_event(settings.input_bucket, "incoming/ok.csv")
    event["Records"].insert(0, {"eventName": "ObjectCreated:Put", "s3": {"bucket": {}}})
    event["Records"].insert(0, "not a record")
    results = handler.score_s3_event(event, model, settings, s3)
    assert [r.status for r in results] == ["rejected", "rejected", "scored"]
    assert keys(s3, settings.output_bucket) == ["predictions/ok.predictions.csv"]


def test_s3_failing_for_one_record_is_raised_after_the_others_are_scored(s3, settings, model, houses_csv):
    put(s3, settings.input_bucket, "incoming/ok.csv", houses_csv)
    event = s3_put_event(settings.input_bucket, "incoming/missing-bucket-output.csv", "incoming/ok.csv")
    put(s3, settings.input_bucket, "incoming/missing-bucket-output.csv", houses_csv)
    broken = BatchSettings(settings.input_bucket, "incoming/", ".csv", settings.output_bucket, "predictions/")

    def fail_first_upload(params, **_kwargs):
        if params.get("Key", "").startswith("predictions/missing"):
            raise ConnectionError("S3 went away for this one")

    s3.meta.events.register("provide-client-params.s3.CreateMultipartUpload", fail_first_upload)
    s3.meta.events.register("provide-client-params.s3.PutObject", fail_first_upload)
    try:
        with pytest.raises(ConnectionError, match="went away"):
            handler.score_s3_event(event, model, broken, s3)
    finally:
        s3.meta.events.unregister("provide-client-params.s3.CreateMultipartUpload", fail_first_upload)
        s3.meta.events.unregister("provide-client-params.s3.PutObject", fail_first_upload)
    assert keys(s3, settings.output_bucket) == ["predictions/ok.predictions.csv"]


def test_an_upload_with_explain_metadata_gets_contribution_columns(s3, settings, model, houses_csv):
    s3.put_object(Bucket=settings.input_bucket, Key="incoming/why.csv", Body=houses_csv, Metadata={"explain": "true"})
    s3.put_object(Bucket=settings.input_bucket, Key="incoming/plain.csv", Body=houses_csv)
    handler.score_s3_event(
        s3_put_event(settings.input_bucket, "incoming/why.csv", "incoming/plain.csv"), model, settings, s3
    )
    why = read(s3, settings.output_bucket, "predictions/why.predictions.csv").split(b"\n", 1)[0].decode()
    plain = read(s3, settings.output_bucket, "predictions/plain.predictions.csv").split(b"\n", 1)[0].decode()
    assert why.endswith(",contrib_city_encoded,contrib_baseline") and "contrib_" not in plain
    assert why.startswith(plain)


def test_s3s_test_event_reaches_the_handler_through_chalice_and_is_ignored(logged):
    """Chalice's own S3Event needs Records; the app's event class lets the test event through to be logged."""
    import app as app_module
    from testkit.events import LambdaContext

    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-01-01T00:00:00Z", "Bucket": "b"}
    assert app_module.score_uploaded_csv(test_event, LambdaContext()) is None
    assert [line["reason"] for line in logged if line["event"] == "batch_event_ignored"] == ["an s3:TestEvent"]
