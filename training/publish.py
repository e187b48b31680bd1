"""Publish a trained version to S3, moving `LATEST` only once the whole version is there.

    python -m training.publish --bucket B --prefix models/house-prices [--version V]

The upload order makes a half-finished publish harmless: data files (model, encoders, report
and card), then the manifest, then a read-back of every file against its checksum and through
the same loader and S3 reader the service uses, and only then `LATEST`.
S3 is reached with boto3's ordinary configuration (AWS_ENDPOINT_URL_S3 included); the reader
gets boto3's credentials, region and the same endpoint variables.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
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
from chalicelib.s3_get import Credentials, S3Reader, endpoint_from_environment


@dataclass(frozen=True)
class BotoCredentials:
    """boto3's credentials (profiles, SSO, refresh included) as a source for the service's S3 reader."""

    credentials: Any  # botocore.credentials.Credentials

    def get(self) -> Credentials:
        frozen = self.credentials.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)


def publish(
    artifacts_dir: Path, bucket: str, prefix: str, s3_client: Any, reader: S3Reader, version: str = LATEST
) -> str:
    """Upload one version with `s3_client` (boto3), read it back with `reader` (the service's client
    for the same endpoint), then point `s3://bucket/prefix/LATEST` at it; return the version."""
    local = open_store(str(artifacts_dir))
    version = resolve_version(local, version)
    blobs = verify_version(local, version)
    load_artifacts(local, version)  # never publish what the service would refuse
    blobs[MANIFEST_FILE] = local.read(f"{version}/{MANIFEST_FILE}")
    remote = S3Store(reader, bucket, prefix.strip("/"))
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
    session = boto3.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise SystemExit("no AWS credentials: configure a profile or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    s3_client = session.client("s3")
    reader = S3Reader(s3_client.meta.region_name, BotoCredentials(credentials), endpoint_from_environment())
    version = publish(args.artifacts, args.bucket, args.prefix, s3_client, reader, args.version)
    print(f"published {version} to s3://{args.bucket}/{args.prefix.strip('/')}/ and moved LATEST")


if __name__ == "__main__":
    main()
