"""Loading refuses what it cannot trust; publishing to S3 and loading back round-trips."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from chalicelib.artifacts import (
    CARD_FILE,
    CHECKSUMMED,
    ENCODERS_FILE,
    LATEST,
    MANIFEST_FILE,
    MODEL_FILE,
    REPORT_FILE,
    ArtifactError,
    LocalStore,
    S3Store,
    load_artifacts,
    open_store,
)
from chalicelib.predictor import LazyPredictor, load_predictor
from chalicelib.s3_get import Credentials, S3Reader
from tests.conftest import ROOT
from tests.expected import json_features, reference_predict
from training.publish import publish


@pytest.fixture
def copy_dir(artifacts_dir, tmp_path):
    target = tmp_path / "artifacts"
    shutil.copytree(artifacts_dir, target)
    return target, (target / LATEST).read_text().strip()


def test_loads_latest_and_predicts_the_lab_records(artifacts_dir, lab_records):
    predictor = load_predictor(str(artifacts_dir))
    matrix = json_features(lab_records, predictor)
    predictions = np.array(predictor.predict_rows(matrix.tolist()))
    assert predictions.shape == (5,)
    assert np.array_equal(predictions, reference_predict(artifacts_dir, matrix))
    assert np.all((predictions > 10_000) & (predictions < 20_000_000))


def test_rejects_a_tampered_model(copy_dir):
    root, version = copy_dir
    model = root / version / MODEL_FILE
    model.write_text(model.read_text().replace("leaf_value=", "leaf_value=1", 1))
    with pytest.raises(ArtifactError, match="does not match its checksum"):
        load_predictor(str(root))


def test_rejects_tampered_encoders(copy_dir):
    root, version = copy_dir
    encoders = root / version / ENCODERS_FILE
    state = json.loads(encoders.read_text())
    state["city_encoded"]["global_mean"] = 1.0
    encoders.write_text(json.dumps(state, sort_keys=True))
    with pytest.raises(ArtifactError, match=r"encoders\.json does not match"):
        load_predictor(str(root))


@pytest.mark.parametrize("missing", [MODEL_FILE, ENCODERS_FILE, MANIFEST_FILE])
def test_rejects_an_incomplete_version(copy_dir, missing):
    root, version = copy_dir
    (root / version / missing).unlink()
    with pytest.raises(ArtifactError, match=re.escape(f"{missing} does not exist")):
        load_predictor(str(root))


def test_rejects_another_lightgbm_major_version(copy_dir):
    root, version = copy_dir
    manifest_path = root / version / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["lightgbm_version"] = "3.3.5"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"trained with lightgbm 3\.3\.5"):
        load_predictor(str(root))


def test_missing_latest_and_missing_setting_are_clear(tmp_path, monkeypatch):
    with pytest.raises(ArtifactError, match="LATEST does not exist"):
        load_predictor(str(tmp_path))
    monkeypatch.delenv("ARTIFACTS_URI", raising=False)
    with pytest.raises(ArtifactError, match="ARTIFACTS_URI is not set"):
        LazyPredictor.from_environment().get()


def test_publish_then_load_through_s3(artifacts_dir, s3, s3_server, bucket, lab_records):
    version = publish(artifacts_dir, bucket, "models/house-prices", s3, s3_server.reader())
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted(
        [f"models/house-prices/{LATEST}"]
        + [f"models/house-prices/{version}/{n}" for n in (*CHECKSUMMED, MANIFEST_FILE)]
    )
    assert {REPORT_FILE, CARD_FILE} <= set(CHECKSUMMED)
    for name in (REPORT_FILE, CARD_FILE):
        body = s3.get_object(Bucket=bucket, Key=f"models/house-prices/{version}/{name}")["Body"].read()
        assert body == (artifacts_dir / version / name).read_bytes()
    remote = load_predictor(f"s3://{bucket}/models/house-prices", s3_client=s3_server.reader())
    local = load_predictor(str(artifacts_dir))
    assert remote.version == local.version == version
    matrix = json_features(lab_records, local)
    assert remote.predict_rows(matrix.tolist()) == local.predict_rows(matrix.tolist())


def test_a_half_published_version_leaves_latest_on_the_complete_one(artifacts_dir, s3, s3_server, bucket):
    reader = s3_server.reader()
    first = publish(artifacts_dir, bucket, "m", s3, reader)
    s3.put_object(Bucket=bucket, Key="m/20990101T000000Z-deadbeef/model.txt", Body=b"partial")
    assert open_store(f"s3://{bucket}/m", reader).read(LATEST).decode() == first
    assert load_predictor(f"s3://{bucket}/m", s3_client=reader).version == first
    with pytest.raises(ArtifactError, match=r"manifest\.json does not exist"):
        load_predictor(f"s3://{bucket}/m", "20990101T000000Z-deadbeef", s3_client=reader)


def test_unreachable_s3_is_an_artifact_error():
    reader = S3Reader("us-east-1", Credentials("x", "x"), endpoint="http://127.0.0.1:9", attempts=1)
    with pytest.raises(ArtifactError, match=r"cannot reach S3 for s3://nowhere/models/LATEST: could not connect"):
        load_predictor("s3://nowhere/models", s3_client=reader)


def test_the_environment_configures_the_default_reader(artifacts_dir, s3, s3_server, bucket, monkeypatch):
    publish(artifacts_dir, bucket, "m", s3, s3_server.reader())
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.url)
    store = open_store(f"s3://{bucket}/m/")
    assert isinstance(store, S3Store) and store.prefix == "m"
    assert store.read(LATEST).decode() == (artifacts_dir / LATEST).read_text().strip()


def test_the_publish_command_reads_back_with_boto3s_credentials(artifacts_dir, s3, s3_server, bucket):
    env = {
        "PATH": os.environ["PATH"],
        "AWS_ACCESS_KEY_ID": "publisher",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "token",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": s3_server.url,
    }
    command = [sys.executable, "-m", "training.publish", "--bucket", bucket, "--prefix", "m"]
    done = subprocess.run(
        [*command, "--artifacts", str(artifacts_dir)], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    version = (artifacts_dir / LATEST).read_text().strip()
    assert done.stdout.startswith(f"published {version} to s3://{bucket}/m/")
    assert s3.get_object(Bucket=bucket, Key="m/LATEST")["Body"].read().decode() == version


class RecordingStore(LocalStore):
    """A local store that remembers which keys were read."""

    def __init__(self, root):
        super().__init__(root)
        object.__setattr__(self, "keys", [])

    def read(self, key: str) -> bytes:
        self.keys.append(key)
        return super().read(key)


def test_the_service_reads_only_what_it_serves_with(artifacts_dir):
    store = RecordingStore(artifacts_dir)
    version = load_artifacts(store).version
    assert store.keys == [LATEST, f"{version}/{MANIFEST_FILE}", f"{version}/{MODEL_FILE}", f"{version}/{ENCODERS_FILE}"]


@pytest.mark.parametrize("name", [REPORT_FILE, CARD_FILE])
def test_a_tampered_report_or_card_is_not_published_but_still_served(copy_dir, s3, s3_server, bucket, name):
    root, version = copy_dir
    (root / version / name).write_text("edited by hand\n")
    with pytest.raises(ArtifactError, match=rf"{name.replace('.', '[.]')} does not match its checksum"):
        publish(root, bucket, "m", s3, s3_server.reader())
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert load_predictor(str(root)).version == version


def test_a_version_without_a_report_checksum_is_not_published(copy_dir, s3, s3_server, bucket):
    root, version = copy_dir
    manifest_path = root / version / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    del manifest["files"][REPORT_FILE]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"lists no checksum for \['report\.html'\]"):
        publish(root, bucket, "m", s3, s3_server.reader())
