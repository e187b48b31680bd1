"""Where uploads arrive and where their results go, and how an input key maps to output keys.

app.py reads these settings at import for the S3 trigger, so this module does no I/O and
imports nothing heavy.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

PREDICTIONS_SUFFIX = ".predictions.csv"
ERROR_REPORT_SUFFIX = ".error.json"
# S3 keys are at most 1,024 bytes of UTF-8.
MAX_KEY_BYTES = 1024
# Reports for input keys whose output key would be too long go here, named by a hash of the key.
LONG_KEYS_FOLDER = "_long-keys/"
# A fanned-out run's working files: `<output_prefix>_runs/<execution name>/`.
RUNS_FOLDER = "_runs/"
# Uploads through the jobs API: `<input_prefix>jobs/<job id><input_suffix>`.
JOBS_FOLDER = "jobs/"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class OutputKeyError(ValueError):
    """An input key that has no valid output key; the message says why."""


@dataclass(frozen=True)
class BatchSettings:
    """Where uploads arrive and where their predictions go."""

    input_bucket: str
    input_prefix: str
    input_suffix: str
    output_bucket: str
    output_prefix: str

    @classmethod
    def from_environment(cls) -> BatchSettings:
        """Read at import by app.py, so it is cheap, does no I/O and has defaults for packaging."""
        env = os.environ.get
        return cls(
            input_bucket=env("INPUT_BUCKET", "house-prices-input"),
            input_prefix=env("INPUT_PREFIX", "incoming/"),
            input_suffix=env("INPUT_SUFFIX", ".csv"),
            output_bucket=env("OUTPUT_BUCKET", "house-prices-output"),
            output_prefix=env("OUTPUT_PREFIX", "predictions/"),
        )

    def check(self) -> None:
        """Refuse a configuration whose outputs would be scored again (an endless loop)."""
        if not self.input_bucket or not self.output_bucket:
            raise ValueError("INPUT_BUCKET and OUTPUT_BUCKET must both be set")
        if self.input_bucket != self.output_bucket:
            return
        # An output key is output_prefix + anything + one of our suffixes; it matches the
        # trigger if some such key starts with input_prefix and ends with input_suffix.
        prefixes_overlap = self.output_prefix.startswith(self.input_prefix) or self.input_prefix.startswith(
            self.output_prefix
        )
        suffixes_overlap = any(
            ours.endswith(self.input_suffix) or self.input_suffix.endswith(ours)
            for ours in (PREDICTIONS_SUFFIX, ERROR_REPORT_SUFFIX)
        )
        if prefixes_overlap and suffixes_overlap:
            raise ValueError(
                f"output s3://{self.output_bucket}/{self.output_prefix}*{PREDICTIONS_SUFFIX} would trigger the "
                f"handler again (input s3://{self.input_bucket}/{self.input_prefix}*{self.input_suffix}): "
                "use another OUTPUT_BUCKET, or an OUTPUT_PREFIX outside INPUT_PREFIX"
            )

    def output_key(self, input_key: str) -> str:
        """`incoming/2024/a b.csv` -> `predictions/2024/a b.predictions.csv`; never outside the output prefix.

        Raises OutputKeyError for a key that is not ours, could escape the prefix, or maps to a key
        longer than S3 allows (`long_key_report` then names where its report goes).
        """
        if not input_key.startswith(self.input_prefix) or not input_key.endswith(self.input_suffix):
            raise OutputKeyError(
                f"key {input_key!r} is not under {self.input_prefix!r} with suffix {self.input_suffix!r}"
            )
        relative = input_key[len(self.input_prefix) : len(input_key) - len(self.input_suffix)]
        if "\\" in relative or _CONTROL.search(relative):
            raise OutputKeyError(f"key {input_key!r} holds a backslash or a control character")
        segments = relative.split("/")
        if any(s in ("", ".", "..") for s in segments):
            raise OutputKeyError(f"key {input_key!r} has an empty, '.' or '..' path segment (or is absolute)")
        key = self.output_prefix + relative + PREDICTIONS_SUFFIX
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise OutputKeyError(
                f"the output key for this {len(input_key.encode('utf-8')):,}-byte input key would be longer than "
                f"S3's {MAX_KEY_BYTES:,} bytes: shorten the input key (its report is {self.long_key_report(input_key)})"
            )
        return key

    def run_prefix(self, run_name: str) -> str:
        """Where a fanned-out run keeps its plan, per-range summaries and totals (see chalicelib.batch.fanout)."""
        return f"{self.output_prefix}{RUNS_FOLDER}{run_name}/"

    def error_report_key(self, input_key: str) -> str:
        return self.output_key(input_key).removesuffix(PREDICTIONS_SUFFIX) + ERROR_REPORT_SUFFIX

    def long_key_report(self, input_key: str) -> str:
        """A short, deterministic report key for an input key too long to map: the same key on every delivery."""
        digest = hashlib.sha256(input_key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"{self.output_prefix}{LONG_KEYS_FOLDER}{digest}{ERROR_REPORT_SUFFIX}"


@dataclass(frozen=True)
class FanoutSettings:
    """When an upload is split over a Step Functions Distributed Map, and into how large byte ranges.

    `threshold_bytes` 0 turns fan-out off (every file is scored by one function).
    """

    threshold_bytes: int
    range_bytes: int
    max_concurrency: int
    state_machine_name: str

    @classmethod
    def from_environment(cls) -> FanoutSettings:
        """Cheap, like BatchSettings: app.py reads it at import."""
        env = os.environ.get
        return cls(
            threshold_bytes=int(env("FANOUT_THRESHOLD_BYTES", "0")),
            range_bytes=int(env("FANOUT_RANGE_BYTES", str(128 * 1024 * 1024))),
            max_concurrency=int(env("FANOUT_MAX_CONCURRENCY", "100")),
            state_machine_name=env("FANOUT_STATE_MACHINE", "house-prices-fanout"),
        )

    def fans_out(self, size: int) -> bool:
        return 0 < self.threshold_bytes < size


def run_name(bucket: str, key: str, etag: str) -> str:
    """The execution name of an upload: the same for every delivery of its event, so S3's redeliveries
    start no second run (Step Functions refuses a name twice). 80 characters at most, [0-9a-z-]."""
    digest = hashlib.sha256(f"{bucket}\n{key}\n{etag.strip(chr(34))}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"score-{digest[:64]}"
