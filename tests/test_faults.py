"""Faults injected into real parts: the S3 server stopped and restarted, a broken version
published over a good one, an upload failing half-way, and the same event twice at once."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.artifacts import LATEST, MODEL_FILE
from chalicelib.batch import handler
from chalicelib.batch.scoring import score_csv_stream
from chalicelib.batch.settings import BatchSettings
from chalicelib.predictor import LazyPredictor, load_predictor
from testkit.events import s3_put_event
from tests.conftest import local_project
from training.publish import publish

PREFIX = "models/house-prices"


@pytest.fixture
def fresh_container(monkeypatch, s3_server):
    """Returns a cold app: a new LazyPredictor, reading S3 through the test server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.url)

    def make():
        monkeypatch.setattr(app_module, "model", LazyPredictor.from_environment())
        return app_module.app

    return make


def predict(client, records) -> tuple[int, dict]:
    response = client.http.post(
        "/predict_price", headers={"Content-Type": "application/json"}, body=json.dumps(records)
    )
    return response.status_code, json.loads(response.body)


def test_s3_down_at_cold_start_is_503_then_recovers(
    s3_server, bucket, artifacts_dir, fresh_container, tmp_path, lab_records, logged
):
    project = local_project(tmp_path, ARTIFACTS_URI=f"s3://{bucket}/{PREFIX}")
    with Client(fresh_container(), stage_name="local", project_dir=str(project)) as client:
        s3_server.stop()
        status, body = predict(client, lab_records)
        assert status == 503
        assert "model unavailable: cannot reach S3" in body["error"]
        assert any(line["event"] == "model_load_failed" for line in logged)

        s3_server.start()  # a new, empty server on the same port: publish again
        s3 = s3_server.client()
        s3.create_bucket(Bucket=bucket)
        version = publish(artifacts_dir, bucket, PREFIX, s3, s3_server.reader())
        status, body = predict(client, lab_records)
        assert status == 200 and body["model_version"] == version and body["count"] == 5


def publish_corrupted(s3, bucket: str, artifacts_dir: Path) -> str:
    """What a broken publisher leaves: a new version whose model does not match its manifest."""
    good = (artifacts_dir / LATEST).read_text().strip()
    bad = "29990101T000000Z-corrupt0"
    for path in (artifacts_dir / good).iterdir():
        body = path.read_bytes()
        if path.name == MODEL_FILE:
            body = body.replace(b"leaf_value=", b"leaf_value=9", 1)
        s3.put_object(Bucket=bucket, Key=f"{PREFIX}/{bad}/{path.name}", Body=body)
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}/{LATEST}", Body=bad.encode())
    return bad


def test_a_corrupted_version_is_refused_and_the_loaded_one_kept(
    s3, s3_server, bucket, artifacts_dir, fresh_container, tmp_path, lab_records, logged
):
    good = publish(artifacts_dir, bucket, PREFIX, s3, s3_server.reader())
    project = local_project(tmp_path, ARTIFACTS_URI=f"s3://{bucket}/{PREFIX}")
    with Client(fresh_container(), stage_name="local", project_dir=str(project)) as warm:
        assert predict(warm, lab_records)[1]["model_version"] == good
        publish_corrupted(s3, bucket, artifacts_dir)
        status, body = predict(warm, lab_records)
        assert status == 200 and body["model_version"] == good

    with Client(fresh_container(), stage_name="local", project_dir=str(project)) as cold:
        status, body = predict(cold, lab_records)
        assert status == 503 and "model.txt does not match its checksum" in body["error"]
    failures = [line for line in logged if line["event"] == "model_load_failed"]
    assert failures and "does not match its checksum" in failures[-1]["reason"]


def batch_setup(s3, bucket: str, synthetic_csvs) -> tuple[BatchSettings, bytes, dict]:
    s3.create_bucket(Bucket=f"{bucket}-out")
    settings = BatchSettings(bucket, "incoming/", ".csv", f"{bucket}-out", "predictions/")
    header, _, rows = synthetic_csvs[0].read_bytes().partition(b"\n")
    data = header + b"\n" + rows * 3  # an output of several 5 MiB parts
    key = "incoming/retry me.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    event = s3_put_event(bucket, key)
    return settings, data, event


def local_output(data: bytes, predictor) -> bytes:
    out = io.BytesIO()
    score_csv_stream(io.BytesIO(data), out.write, predictor)
    return out.getvalue()


def output_objects(s3, settings: BatchSettings) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=settings.output_bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=settings.output_bucket, Key=o["Key"])["Body"].read() for o in listing}


def test_an_upload_failing_mid_way_is_aborted_and_the_retry_writes_one_output(
    s3, s3_server, bucket, synthetic_csvs, artifacts_dir
):
    settings, data, event = batch_setup(s3, bucket, synthetic_csvs)
    predictor = load_predictor(str(artifacts_dir))
    model = LazyPredictor(lambda: predictor)
    failing = s3_server.client()
    parts = []

    def second_part_fails(params: dict, **_) -> None:
        parts.append(params["PartNumber"])
        if len(parts) == 2:
            raise ConnectionError("connection reset while uploading part 2")

    failing.meta.events.register("before-parameter-build.s3.UploadPart", second_part_fails)
    with pytest.raises(ConnectionError):
        handler.score_s3_object(bucket, "incoming/retry me.csv", predictor, settings, failing, 5 * 1024 * 1024)
    assert parts[:2] == [1, 2]
    assert not s3.list_multipart_uploads(Bucket=settings.output_bucket).get("Uploads")
    # Until a retry succeeds, the key's current result says scoring failed (no half output, nothing stale).
    [(key, body)] = output_objects(s3, settings).items()
    report = json.loads(body)
    assert key == "predictions/retry me.error.json" and "connection reset while uploading part 2" in report["error"]

    handler.score_s3_event(event, model, settings, s3_client=s3)  # Lambda's retry
    assert output_objects(s3, settings) == {"predictions/retry me.predictions.csv": local_output(data, predictor)}


def test_the_same_event_twice_at_once_gives_one_correct_output(s3, s3_server, bucket, synthetic_csvs, artifacts_dir):
    settings, data, event = batch_setup(s3, bucket, synthetic_csvs)
    predictor = load_predictor(str(artifacts_dir))
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def deliver() -> None:
        try:
            start.wait()
            handler.score_s3_event(event, LazyPredictor(lambda: predictor), settings, s3_client=s3_server.client())
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert output_objects(s3, settings) == {"predictions/retry me.predictions.csv": local_output(data, predictor)}
    assert not s3.list_multipart_uploads(Bucket=settings.output_bucket).get("Uploads")


def test_a_failure_after_an_earlier_upload_leaves_no_stale_predictions(
    s3, s3_server, bucket, synthetic_csvs, artifacts_dir
):
    """An earlier upload of the key was scored; the new upload's scoring fails for an unexpected reason."""
    settings, data, event = batch_setup(s3, bucket, synthetic_csvs)
    predictor = load_predictor(str(artifacts_dir))
    handler.score_s3_event(event, LazyPredictor(lambda: predictor), settings, s3_client=s3)
    assert list(output_objects(s3, settings)) == ["predictions/retry me.predictions.csv"]
    s3.put_object(Bucket=bucket, Key="incoming/retry me.csv", Body=data + data.split(b"\n", 2)[1] + b"\n")
    failing = s3_server.client()

    def no_upload(**_) -> None:
        raise ConnectionError("S3 refused the upload")

    failing.meta.events.register("before-parameter-build.s3.CreateMultipartUpload", no_upload)
    with pytest.raises(ConnectionError):
        handler.score_s3_object(bucket, "incoming/retry me.csv", predictor, settings, failing, 5 * 1024 * 1024)
    [(key, body)] = output_objects(s3, settings).items()
    assert key == "predictions/retry me.error.json" and "S3 refused the upload" in json.loads(body)["error"]
