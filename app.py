"""house-prices: a LightGBM house-price model on AWS Lambda.

Routes and event handlers only; the work is in chalicelib. On Lambda the model is loaded
while the function initialises; when the Chalice CLI imports this module to package or
deploy it, nothing is loaded. The S3 handler imports the batch scorer when an event
arrives, so the API function never loads it (nor numpy).
"""

import os

from chalice import CORSConfig, Response

from chalicelib import api
from chalicelib.batch.settings import BatchSettings, FanoutSettings
from chalicelib.envelope import ApiApp, S3Notification
from chalicelib.openapi import openapi_document
from chalicelib.page import web_page
from chalicelib.predictor import LazyPredictor

app = ApiApp(app_name="house-prices")
model = LazyPredictor.from_environment()
model.load_during_lambda_init()
batch_settings = BatchSettings.from_environment()
fanout_settings = FanoutSettings.from_environment()
cors = CORSConfig(allow_origin=os.environ.get("CORS_ALLOW_ORIGIN", "*"), max_age=600)


@app.route("/predict_price", methods=["POST"], cors=cors, content_types=["application/json"])
def predict_price() -> Response:
    request_id = getattr(app.lambda_context, "aws_request_id", None)
    reply = api.predict_reply(app.current_request.raw_body, model, request_id)
    return Response(reply.body, status_code=reply.status)


# The path the common Lambda lab's clients call: the same request, the same answer.
@app.route("/predict", methods=["POST"], cors=cors, content_types=["application/json"])
def predict() -> Response:
    return predict_price()


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


# The jobs API (chalicelib/batch/jobs.py): score a file with curl alone. boto3 is imported per call, not here.
@app.route("/jobs", methods=["POST"], cors=cors, content_types=["application/json"])
def create_job() -> Response:
    from chalicelib.batch import jobs

    reply = jobs.create_job(app.current_request.raw_body, batch_settings, jobs.presigning_client())
    return Response(reply.body, status_code=reply.status)


@app.route("/jobs/{job_id}", methods=["GET"], cors=cors)
def job_status(job_id: str) -> Response:
    from chalicelib.batch import jobs

    function_arn = getattr(app.lambda_context, "invoked_function_arn", None)
    describe = jobs.execution_describer(function_arn, fanout_settings.state_machine_name) if function_arn else None
    reply = jobs.job_status(job_id, batch_settings, fanout_settings, jobs.presigning_client(), describe)
    return Response(reply.body, status_code=reply.status)


@app.on_s3_event(
    bucket=batch_settings.input_bucket,
    prefix=batch_settings.input_prefix,
    suffix=batch_settings.input_suffix,
    events=["s3:ObjectCreated:*"],
)
def score_uploaded_csv(event) -> None:
    from chalicelib.batch.handler import Fanout, score_s3_event
    from chalicelib.batch.ranges import StepFunctionsStarter

    context = event.context
    fanout = None
    if fanout_settings.threshold_bytes:
        starter = StepFunctionsStarter.for_function(context.invoked_function_arn, fanout_settings.state_machine_name)
        fanout = Fanout(fanout_settings, starter)
    request_id = getattr(context, "aws_request_id", None)
    score_s3_event(event.to_dict(), model, batch_settings, request_id=request_id, fanout=fanout)


score_uploaded_csv.event_class = S3Notification  # S3's test event has no Records


# The Lambda tasks of the fan-out state machine (deploy/state_machine.py): one byte range, or a run's start and end.
@app.lambda_function(name="fanout_task")
def fanout_task(event: dict, context) -> dict | None:
    from chalicelib.batch.fanout import run_lambda_step

    return run_lambda_step(event, batch_settings)
