"""The OpenAPI 3 document of the API, generated from the feature contract.

Built from the same Field list that validation enforces, so the document cannot drift
from what the service accepts. Served at `GET /openapi.json`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from chalicelib.api import MAX_RECORDS
from chalicelib.contract import FEATURES, PASSTHROUGH, TARGET, Field


def _number(spec: Field) -> dict[str, Any]:
    return {"type": "integer" if spec.integer else "number", "minimum": spec.low, "maximum": spec.high}


_PRICE = {"type": "number", "minimum": 0, "description": "the actual price, echoed back in `actuals`"}
_LOCATION_NAMES = ("lat", "lng")


def _schemas() -> dict[str, Any]:
    pre_encoded = {
        "type": "object",
        "description": "All 39 model features, as the lab request sends them. Unknown fields are ignored.",
        "required": [f.name for f in FEATURES],
        "properties": {**{f.name: _number(f) for f in FEATURES}, TARGET: _PRICE},
    }
    raw = {
        "type": "object",
        "description": (
            "Raw HouseTS columns. Give `date`, or `year` and `month`. `lat`/`lng` may be left out "
            "when `city_full` is a city the model was trained on."
        ),
        "required": ["zipcode", "city_full", *[f.name for f in PASSTHROUGH if f.name not in _LOCATION_NAMES]],
        "anyOf": [{"required": ["date"]}, {"required": ["year", "month"]}],
        "properties": {
            "zipcode": {"type": "string", "pattern": "^[0-9]{1,5}$"},
            "city_full": {"type": "string", "minLength": 1},
            "date": {"type": "string", "format": "date"},
            "year": _number(FEATURES[0]),
            "month": _number(FEATURES[2]),
            **{f.name: _number(f) for f in PASSTHROUGH},
            TARGET: _PRICE,
        },
    }
    record = {"anyOf": [{"$ref": "#/components/schemas/PreEncodedRecord"}, {"$ref": "#/components/schemas/RawRecord"}]}
    records = {"type": "array", "minItems": 1, "maxItems": MAX_RECORDS, "items": record}
    problem = {
        "type": "object",
        "required": ["record", "field", "message"],
        "properties": {
            "record": {"type": "integer", "description": "index of the record in the request"},
            "field": {"type": "string"},
            "message": {"type": "string"},
        },
    }
    envelope = {
        "type": "object",
        "required": ["records"],
        "additionalProperties": False,
        "properties": {
            "records": records,
            "explain": {
                "type": "boolean",
                "default": False,
                "description": "add each prediction's baseline and per-feature contributions in dollars",
            },
            "interval": {
                "type": "number",
                "description": "interval level to answer with (one the model calibrated, e.g. 0.8 or 0.95); "
                "default: the model's default level",
            },
        },
    }
    contribution = {
        "type": "object",
        "required": ["value"],
        "properties": {"feature": {"type": "string"}, "field": {"type": "string"}, "value": {"type": "number"}},
    }
    explanation = {
        "type": "object",
        "required": ["baseline", "contributions"],
        "description": "baseline + the sum of contributions = the prediction; largest contributions first",
        "properties": {
            "baseline": {"type": "number", "description": "the model's expected value"},
            "contributions": {"type": "array", "items": contribution, "description": "per model feature"},
            "fields": {
                "type": "array",
                "items": contribution,
                "description": "raw records only: grouped back to the fields sent (zipcode, city_full, date, ...)",
            },
        },
    }
    numbers = {"type": "array", "items": {"type": "number"}}
    return {
        "PreEncodedRecord": pre_encoded,
        "RawRecord": raw,
        "PredictRequest": {"anyOf": [envelope, records, record]},
        "PredictResponse": {
            "type": "object",
            "required": ["predictions", "count", "model_version"],
            "properties": {
                "predictions": {"type": "array", "items": {"type": "number"}},
                "count": {"type": "integer"},
                "model_version": {"type": "string"},
                "actuals": {**numbers, "description": "the records' price, when every record had one"},
                "level": {"type": "number", "description": "the level of lower and upper"},
                "lower": {**numbers, "description": "split-conformal interval, one bound per prediction"},
                "upper": numbers,
                "explanations": {"type": "array", "items": explanation},
                "warnings": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}},
                "warnings_not_listed": {"type": "integer"},
            },
        },
        "Problem": problem,
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string"},
                "problems": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}},
                "problems_not_listed": {"type": "integer"},
                "warnings": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}},
                "warnings_not_listed": {"type": "integer"},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "model_loaded", "model_version", "lightgbm_version"],
            "properties": {
                "status": {"type": "string"},
                "model_loaded": {"type": "boolean"},
                "model_version": {"type": ["string", "null"]},
                "lightgbm_version": {"type": "string"},
            },
        },
    }


def _json(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


@cache
def openapi_document() -> dict[str, Any]:
    error = "#/components/schemas/Error"
    predict = {
        "operationId": "predictPrice",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
        },
        "responses": {
            "200": _json("#/components/schemas/PredictResponse", "one prediction and interval per record"),
            "400": _json(error, "malformed body or invalid records, each problem named"),
            "413": _json(error, "body larger than 1 MB"),
            "415": {"description": "content type other than application/json"},
            "503": _json(error, "model cannot be loaded now; retry later"),
        },
    }
    lab_path = {**predict, "operationId": "predict", "description": "/predict_price under the lab's path"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "house-prices", "version": "1", "description": "LightGBM house-price predictions"},
        "paths": {
            "/predict_price": {"post": predict},
            "/predict": {"post": lab_path},
            "/health": {
                "get": {
                    "operationId": "health",
                    "responses": {"200": _json("#/components/schemas/Health", "service and model state")},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "responses": {"200": {"description": "this document", "content": {"application/json": {}}}},
                }
            },
        },
        "components": {"schemas": _schemas()},
    }
