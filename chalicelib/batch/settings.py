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

    def error_report_key(self, input_key: str) -> str:
        return self.output_key(input_key).removesuffix(PREDICTIONS_SUFFIX) + ERROR_REPORT_SUFFIX

    def long_key_report(self, input_key: str) -> str:
        """A short, deterministic report key for an input key too long to map: the same key on every delivery."""
        digest = hashlib.sha256(input_key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"{self.output_prefix}{LONG_KEYS_FOLDER}{digest}{ERROR_REPORT_SUFFIX}"
