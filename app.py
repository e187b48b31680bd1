"""house-prices: a LightGBM house-price model on AWS Lambda.

Routes and event handlers only; the work is in chalicelib. Nothing is loaded at import
time: the Chalice CLI imports this module to package and deploy it.
"""

import os

from chalice import Chalice, CORSConfig, Response

from chalicelib import api, batch
from chalicelib.openapi import openapi_document
from chalicelib.page import web_page
from chalicelib.predictor import LazyPredictor

app = Chalice(app_name="house-prices")
model = LazyPredictor.from_environment()
batch_settings = batch.BatchSettings.from_environment()
cors = CORSConfig(allow_origin=os.environ.get("CORS_ALLOW_ORIGIN", "*"), max_age=600)


@app.route("/predict_price", methods=["POST"], cors=cors, content_types=["application/json"])
def predict_price() -> Response:
    request_id = getattr(app.lambda_context, "aws_request_id", None)
    reply = api.predict_reply(app.current_request.raw_body, model, request_id)
    return Response(reply.body, status_code=reply.status)


@app.route("/health", methods=["GET"], cors=cors)
def health() -> dict:
    return api.health(model)


@app.route("/openapi.json", methods=["GET"], cors=cors)
def openapi() -> dict:
    return openapi_document()


@app.route("/", methods=["GET"])
def page() -> Response:
    """A form for people who do not write code; it calls this API, or the one `?api=` names."""
    served = web_page()
    return Response(served.html, headers=served.headers)


@app.on_s3_event(
    bucket=batch_settings.input_bucket,
    prefix=batch_settings.input_prefix,
    suffix=batch_settings.input_suffix,
    events=["s3:ObjectCreated:*"],
)
def score_uploaded_csv(event) -> None:
    request_id = getattr(event.context, "aws_request_id", None)
    batch.score_s3_event(event.to_dict(), model, batch_settings, request_id=request_id)
