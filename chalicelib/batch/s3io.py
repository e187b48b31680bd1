"""Reading an S3 object ahead of the scorer, and writing one as a multipart upload.

S3's time overlaps the CPU's: the next block is downloaded and the last part uploaded by
two background threads while the blocks between them are scored.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from typing import Any

from chalicelib.batch.framing import Readable
from chalicelib.batch.scoring import BatchSummary, score_csv_stream
from chalicelib.logs import log_event
from chalicelib.predictor import Predictor

# S3 multipart parts must be at least 5 MiB, except the last.
PART_BYTES = 8 * 1024 * 1024
# Parts handed to the upload thread and not yet uploaded: one lets the upload of a part
# overlap the scoring of the next block, and bounds memory to that part and the next.
PENDING_PARTS = 1


class ReadAhead:
    """A stream whose next block is read by a background thread while the caller scores this one.

    One block ahead at most, so memory stays bounded; a failed read is raised by `read`.
    """

    def __init__(self, source: Readable, reads: Executor) -> None:
        self.source, self.reads = source, reads
        self.next: Future[bytes] | None = None

    def read(self, size: int) -> bytes:
        data = (self.next or self.reads.submit(self.source.read, size)).result()
        self.next = self.reads.submit(self.source.read, size) if data else None
        return data


class MultipartWriter:
    """Writes one S3 object in parts of at least PART_BYTES, or with one PUT if it is small.

    Parts go to S3 in order from one background thread (`uploads`), so the caller scores the
    next block meanwhile, and waits while PENDING_PARTS are. A failed part is raised in
    the caller when it hands over the next part or completes.
    """

    def __init__(
        self, client: Any, bucket: str, key: str, metadata: dict[str, str], part_bytes: int, uploads: Executor
    ) -> None:
        self.client, self.bucket, self.key, self.metadata = client, bucket, key, metadata
        self.part_bytes = part_bytes
        self.uploads = uploads
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.pending: deque[Future[dict[str, Any]]] = deque()

    def write(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= self.part_bytes:
            with memoryview(self.buffer) as view:  # one copy of the part, not two
                part = bytes(view[: self.part_bytes])
            del self.buffer[: self.part_bytes]
            self._upload_part(part)

    def _upload_part(self, body: bytes) -> None:
        if self.upload_id is None:
            self.upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType="text/csv; charset=utf-8", Metadata=self.metadata
            )["UploadId"]
        self._collect(PENDING_PARTS - 1)  # before handing over more: a failed part stops the upload here
        number = len(self.parts) + len(self.pending) + 1
        self.pending.append(self.uploads.submit(self._send_part, self.upload_id, number, body))

    def _send_part(self, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        reply = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": reply["ETag"]}

    def _collect(self, keep: int) -> None:
        """Record the parts uploaded so far, waiting until at most `keep` are pending; raise a failed one."""
        while self.pending and (len(self.pending) > keep or self.pending[0].done()):
            self.parts.append(self.pending.popleft().result())

    def flush(self) -> None:
        """Upload every part but the last of a multipart upload; what is left is the commit."""
        if self.upload_id is not None:
            if self.buffer:
                self._upload_part(bytes(self.buffer))
                self.buffer.clear()
            self._collect(0)

    def complete(self) -> None:
        """Make the object appear, whole: one PUT if it never reached a part's size."""
        if self.upload_id is None:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=bytes(self.buffer),
                ContentType="text/csv; charset=utf-8",
                Metadata=self.metadata,
            )
            return
        if self.buffer:
            self._upload_part(bytes(self.buffer))
        self._collect(0)
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )

    def abort(self) -> None:
        """Discard the upload: S3 keeps (and bills) the parts of an upload never completed or aborted.

        Parts still queued are dropped and the one in flight is waited for, so none lands after the abort.
        """
        for part in self.pending:
            part.cancel()
        wait(self.pending)
        self.pending.clear()
        if self.upload_id is not None:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
            self.upload_id = None


def score_into_s3(
    source: Readable,
    predictor: Predictor,
    client: Any,
    bucket: str,
    key: str,
    metadata: dict[str, str],
    part_bytes: int,
    before_commit: Callable[[], None],
    explain: bool = False,
) -> BatchSummary:
    """Score `source` into s3://bucket/key. The next block is downloaded and the last part
    uploaded by two background threads while the blocks between them are scored, so S3's
    time overlaps the CPU's instead of adding to it.

    `before_commit` runs after the last part and before the upload completes: raising there
    (the input was replaced meanwhile) leaves no output. On any failure the upload is aborted
    and the failure raised; both threads have ended when this returns or raises.
    """
    with ThreadPoolExecutor(1, "batch-read") as reads, ThreadPoolExecutor(1, "batch-upload") as uploads:
        writer = MultipartWriter(client, bucket, key, metadata, part_bytes, uploads)
        try:
            summary = score_csv_stream(ReadAhead(source, reads), writer.write, predictor, explain=explain)
            writer.flush()
            before_commit()
            writer.complete()
        except BaseException:
            try:
                writer.abort()
            except Exception as abort_error:
                # The failure that led here is the one to raise; this one only leaves parts behind.
                log_event("batch_abort_failed", logging.ERROR, output=f"s3://{bucket}/{key}", reason=repr(abort_error))
            raise
    return summary
