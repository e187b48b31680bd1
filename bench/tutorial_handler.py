"""The reference: what the common LightGBM-on-Lambda tutorial's handler does, for comparison only.

Never deployed, never imported by the app, and no pattern to copy. At cold start it
downloads the whole feature-engineered training CSV from S3 only to learn the column
order (and keeps the frame), and downloads the pickled model; on every request it builds
a pandas DataFrame, reindexes it against those columns filling gaps with 0, unpickles the
model again and predicts with LightGBM's default threads. pickle is tolerable here
because the bench wrote the file itself; joblib is used when installed, as the tutorial does.

Reads REFERENCE_TRAINING_CSV and REFERENCE_MODEL (s3://bucket/key each).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import boto3
import pandas as pd

try:
    import joblib
except ImportError:
    joblib = None

TARGET = "price"
MODEL_PATH = Path(tempfile.gettempdir()) / "bench-reference-model.pkl"

s3 = boto3.client("s3")


def _bucket_key(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _read_training_frame(uri: str) -> pd.DataFrame:
    bucket, key = _bucket_key(uri)
    return pd.read_csv(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


training_frame = _read_training_frame(os.environ["REFERENCE_TRAINING_CSV"])
feature_columns = training_frame.drop(columns=[TARGET]).columns
s3.download_file(*_bucket_key(os.environ["REFERENCE_MODEL"]), str(MODEL_PATH))


def load_model() -> Any:
    """The tutorial's `joblib.load(model_path)`, on every request."""
    if joblib is not None:
        return joblib.load(MODEL_PATH)
    with MODEL_PATH.open("rb") as handle:
        return pickle.load(handle)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway proxy request in, proxy response out."""
    body = json.loads(event["body"])
    frame = pd.DataFrame(body["records"])
    frame = frame.reindex(columns=feature_columns, fill_value=0)
    predictions = load_model().predict(frame)
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"predictions": predictions.tolist()}),
    }
