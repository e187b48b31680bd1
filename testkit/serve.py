"""`make run-jobs`: the API, S3 and the fan-out on this machine, to try the jobs API with curl. Development only.

moto's server stands in for S3 and `chalice local` serves the routes against it. A loop here stands
in for S3's event notifications: each new upload under the input prefix (a key and ETag not seen
before) goes to the real handler, and a file over FANOUT_THRESHOLD_BYTES (`--threshold`) fans out
on testkit's local runner with the generated state machine, as it would on Step Functions.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from chalicelib.batch.fanout import ModelVersions, run_step
from chalicelib.batch.handler import Fanout, score_s3_event
from chalicelib.batch.settings import BatchSettings, FanoutSettings
from chalicelib.predictor import LazyPredictor, load_predictor
from deploy import policy, state_machine
from testkit.events import s3_put_event
from testkit.fanout import LOCAL_FUNCTION_ARN
from testkit.moto import MotoServer
from testkit.ports import wait_for_http
from testkit.stepfunctions import LocalRunner

STAGE = "local"


def deliver_new_uploads(s3: Any, settings: BatchSettings, seen: set[tuple[str, str]], handle: Any) -> None:
    """One poll: every object under the input prefix not seen with this ETag becomes an S3 event."""
    listing = s3.list_objects_v2(Bucket=settings.input_bucket, Prefix=settings.input_prefix)
    for item in listing.get("Contents", []):
        upload = (item["Key"], item["ETag"])
        if upload in seen or not item["Key"].endswith(settings.input_suffix):
            continue
        seen.add(upload)
        event = s3_put_event(settings.input_bucket, item["Key"], size=item["Size"])
        event["Records"][0]["s3"]["object"]["eTag"] = item["ETag"].strip('"')
        handle(event)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--threshold", type=int, help="fan out files over this many bytes (default: config.json)")
    parser.add_argument("--threads", type=int, default=4, help="ranges scored at once")
    args = parser.parse_args(argv)
    config = policy.read_config()
    env = policy.stage_env(config, STAGE)
    settings = BatchSettings(
        env["INPUT_BUCKET"], env["INPUT_PREFIX"], env["INPUT_SUFFIX"], env["OUTPUT_BUCKET"], env["OUTPUT_PREFIX"]
    )
    fanout_config = state_machine.Fanout.of_stage(config, STAGE)
    if args.threshold is not None:
        fanout_config = replace(fanout_config, threshold_bytes=args.threshold)
    fanout = FanoutSettings(
        fanout_config.threshold_bytes,
        fanout_config.range_bytes,
        fanout_config.max_concurrency,
        fanout_config.state_machine_name,
    )
    model = LazyPredictor(lambda: load_predictor(str(args.artifacts)))
    models = ModelVersions(lambda version: load_predictor(str(args.artifacts), version))

    with MotoServer() as server:
        s3 = server.client()
        for bucket in (settings.input_bucket, settings.output_bucket):
            s3.create_bucket(Bucket=bucket)
        machine = state_machine.definition(LOCAL_FUNCTION_ARN, fanout_config)
        runner = LocalRunner(machine, lambda payload: run_step(payload, models, settings, s3), s3, args.threads)

        def handle(event: dict[str, Any]) -> None:
            try:
                score_s3_event(event, model, settings, s3_client=s3, fanout=Fanout(fanout, runner))
            except Exception as exc:  # Lambda would retry; here the next upload should still be scored
                print(f"scoring failed: {exc!r}", file=sys.stderr)

        chalice = Path(sys.executable).with_name("chalice")
        command = [str(chalice), "local", "--stage", STAGE, "--no-autoreload", "--port", str(args.port)]
        api = subprocess.Popen(command, env=server.child_env(os.environ))
        try:
            wait_for_http(f"http://127.0.0.1:{args.port}/health", timeout=60, process=api)
            print(f"API on http://127.0.0.1:{args.port}, S3 on {server.url}; uploads are scored as they arrive")
            seen: set[tuple[str, str]] = set()
            while api.poll() is None:
                deliver_new_uploads(s3, settings, seen, handle)
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            api.terminate()
            api.wait(timeout=10)


if __name__ == "__main__":
    main()
