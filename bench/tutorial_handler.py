"""The reference: what the common LightGBM-on-Lambda lab's handler does, for comparison only.

Never deployed, never imported by the app, and no pattern to copy. Re-implemented from the
lab's description: at cold start it downloads the whole feature-engineered training CSV
from S3 to /tmp only to read its header (`nrows=1`) for the column order, and downloads
the joblib-pickled encoders (the zipcode-frequency and city maps) and model. On every
request it unpickles the model again, builds a DataFrame of the records, encodes raw
zipcodes and cities when a record carries them (the lab's records arrive pre-encoded),
reindexes against the training columns filling gaps with 0, and predicts with LightGBM's
default threads. Pickle is tolerable here, and only here: the bench wrote the files itself.

Reads REFERENCE_TRAINING_CSV, REFERENCE_ENCODERS and REFERENCE_MODEL (s3://bucket/key each);
"/tmp" is `tempfile.gettempdir()`, so the bench can give each run its own.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import boto3
import joblib
import pandas as pd

TARGET = "price"
TMP = Path(tempfile.gettempdir())

s3 = boto3.client("s3")


def download(uri: str, name: str) -> Path:
    """`s3.download_file` of an s3://bucket/key URI into /tmp."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    path = TMP / name
    s3.download_file(bucket, key, str(path))
    return path


training_csv = download(os.environ["REFERENCE_TRAINING_CSV"], "training.csv")
feature_columns = pd.read_csv(training_csv, nrows=1).drop(columns=[TARGET]).columns
encoders = joblib.load(download(os.environ["REFERENCE_ENCODERS"], "encoders.pkl"))
model_path = download(os.environ["REFERENCE_MODEL"], "model.pkl")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway proxy request in, proxy response out."""
    body = json.loads(event["body"])
    frame = pd.DataFrame(body["records"])
    if "zipcode" in frame:
        frame["zipcode_freq"] = frame["zipcode"].astype(str).map(encoders["zipcode_freq"]).fillna(0)
    if "city_full" in frame:
        frame["city_encoded"] = frame["city_full"].map(encoders["city_encoded"]).fillna(encoders["global_mean"])
    frame = frame.reindex(columns=feature_columns, fill_value=0)
    model = joblib.load(model_path)
    predictions = model.predict(frame)
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"predictions": predictions.tolist()}),
    }
