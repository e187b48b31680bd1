"""Batch scoring of CSV files, one module per job.

- `settings`: where uploads arrive and where their results go (read by app.py at import: tiny).
- `framing`: CSV bytes into complete records, a block at a time.
- `cells`: a block's cells into `pipeline.Columns` (the CSV input adapter; pandas).
- `scoring`: a CSV byte stream in, the same rows with their predictions out.
- `s3io`: reading an S3 object ahead and writing one as a multipart upload.
- `handler`: the S3 event: which objects to score, and exactly one current result for each.

Nothing here is imported by the API route; app.py imports `handler` when an S3 event arrives.
"""
