"""Publish a trained version to S3, moving `LATEST` only once the whole version is there.

    python -m training.publish --bucket B --prefix models/house-prices [--version V]

The upload order makes a half-finished publish harmless: data files (model, encoders, report
and card), then the manifest, then a read-back of every file against its checksum and through
the same loader the service uses, and only then `LATEST`.
S3 is reached with boto3's ordinary configuration (AWS_ENDPOINT_URL_S3 included).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from chalicelib.artifacts import (
    CHECKSUMMED,
    LATEST,
    MANIFEST_FILE,
    S3Store,
    load_artifacts,
    open_store,
    resolve_version,
    verify_version,
)


def publish(artifacts_dir: Path, bucket: str, prefix: str, s3_client: Any, version: str = LATEST) -> str:
    """Upload one version and point `s3://bucket/prefix/LATEST` at it; return the version."""
    local = open_store(str(artifacts_dir))
    version = resolve_version(local, version)
    blobs = verify_version(local, version)
    load_artifacts(local, version)  # never publish what the service would refuse
    blobs[MANIFEST_FILE] = local.read(f"{version}/{MANIFEST_FILE}")
    remote = S3Store(s3_client, bucket, prefix.strip("/"))
    for name in (*CHECKSUMMED, MANIFEST_FILE):
        s3_client.put_object(Bucket=bucket, Key=remote.key(f"{version}/{name}"), Body=blobs[name])
    verify_version(remote, version)
    load_artifacts(remote, version)
    s3_client.put_object(Bucket=bucket, Key=remote.key(LATEST), Body=version.encode(), ContentType="text/plain")
    return version


def main() -> None:
    import boto3

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="models/house-prices")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--version", default=LATEST, help="a version folder name; default: the local LATEST")
    args = parser.parse_args()
    version = publish(args.artifacts, args.bucket, args.prefix, boto3.client("s3"), args.version)
    print(f"published {version} to s3://{args.bucket}/{args.prefix.strip('/')}/ and moved LATEST")


if __name__ == "__main__":
    main()
