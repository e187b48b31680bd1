"""One fanned-out scoring run on a local S3 endpoint, for tests/test_fanout.py and `python -m bench.fanout`.

The upload event goes through the real handler (`score_s3_event`), which plans the ranges and
starts the generated state machine on `LocalRunner`; its tasks are the real `fanout_task` steps.
The same file is also scored by the single-function path, so the two outputs can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.batch.fanout import ModelVersions, run_step
from chalicelib.batch.handler import Fanout, ObjectResult, score_s3_event
from chalicelib.batch.settings import BatchSettings, FanoutSettings
from chalicelib.predictor import LazyPredictor, Predictor
from deploy.state_machine import Fanout as FanoutConfig
from deploy.state_machine import definition
from testkit.events import s3_put_event
from testkit.stepfunctions import LocalRunner

LOCAL_FUNCTION_ARN = "arn:aws:lambda:us-east-1:000000000000:function:house-prices-local-fanout_task"


def csv_of_rows(source: bytes, rows: int) -> bytes:
    """`source`'s header, then its data rows cycled until there are `rows` of them."""
    header, _, body = source.partition(b"\n")
    lines = body.rstrip(b"\n").split(b"\n")
    repeats, rest = divmod(rows, len(lines))
    block = b"\n".join(lines) + b"\n"
    return header + b"\n" + block * repeats + b"".join(line + b"\n" for line in lines[:rest])


@dataclass
class FanoutRig:
    """The handler, the state machine on the local runner and the steps, over one S3 client."""

    s3: Any
    settings: BatchSettings
    fanout: FanoutSettings
    runner: LocalRunner
    model: LazyPredictor

    def upload(self, key: str, data: bytes) -> str:
        return self.s3.put_object(Bucket=self.settings.input_bucket, Key=key, Body=data)["ETag"]

    def deliver(self, key: str, etag: str, size: int, fan_out: bool = True) -> list[ObjectResult]:
        """The upload's S3 event, as S3 delivers it (with ETag and size), through the handler."""
        event = s3_put_event(self.settings.input_bucket, key, size=size)
        event["Records"][0]["s3"]["object"]["eTag"] = etag.strip('"')
        fanout = Fanout(self.fanout, self.runner) if fan_out else None
        return score_s3_event(event, self.model, self.settings, s3_client=self.s3, fanout=fanout)

    def output(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.settings.output_bucket, Key=self.settings.output_key(key))["Body"].read()


def fanout_rig(
    s3: Any,
    settings: BatchSettings,
    predictor: Predictor,
    range_bytes: int,
    threads: int,
    failing_range: int | None = None,
) -> FanoutRig:
    """A rig fanning out every file over 1 byte; `failing_range` makes that range's worker raise."""
    fanout = FanoutSettings(1, range_bytes, threads, "house-prices-local-fanout")
    models = ModelVersions(lambda version: predictor)

    def invoke(payload: dict[str, Any]) -> Any:
        if payload["step"] == "score_range" and payload["range"]["index"] == failing_range:
            raise RuntimeError(f"range {failing_range}: the worker was killed")
        return run_step(payload, models, settings, s3)

    machine = definition(LOCAL_FUNCTION_ARN, FanoutConfig(fanout.state_machine_name, threads, 1, range_bytes))
    runner = LocalRunner(machine, invoke, s3, threads)
    return FanoutRig(s3, settings, fanout, runner, LazyPredictor(lambda: predictor))
