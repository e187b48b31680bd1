"""Model artifacts: where a version lives, and loading one only if it is complete and intact.

A version is a folder `<root>/<version>/` holding `model.txt` (LightGBM's native text
format), `encoders.json`, the human-facing `report.html` and `model_card.md`, and
`manifest.json`, which lists the sha256 of the others. The service reads only the files it
serves with (`SERVED`); publishing uploads and verifies all of them (`CHECKSUMMED`).
`<root>/LATEST` names the current version; publishing moves it last. The root is a local
folder or `s3://bucket/prefix`. No pickle anywhere: a model file cannot run code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from chalicelib.s3_get import NotFound, S3Error, S3Reader, Unreachable

LATEST = "LATEST"
MODEL_FILE = "model.txt"
ENCODERS_FILE = "encoders.json"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.html"
CARD_FILE = "model_card.md"
# The report is hundreds of KB the API never needs: fetching it would lengthen every cold start.
SERVED = (MODEL_FILE, ENCODERS_FILE)
CHECKSUMMED = (*SERVED, REPORT_FILE, CARD_FILE)


class ArtifactError(Exception):
    """A version that cannot be served: missing, incomplete, tampered with or incompatible."""


class Store(Protocol):
    """Read access to an artifact root; `read` raises ArtifactError for a missing object."""

    def read(self, key: str) -> bytes: ...

    def describe(self, key: str) -> str: ...


@dataclass(frozen=True)
class LocalStore:
    root: Path

    def read(self, key: str) -> bytes:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"{self.describe(key)} does not exist") from None
        except OSError as exc:
            raise ArtifactError(f"cannot read {self.describe(key)}: {exc.strerror}") from None

    def describe(self, key: str) -> str:
        return str(self.root / key)


@dataclass(frozen=True)
class S3Store:
    reader: S3Reader
    bucket: str
    prefix: str

    def read(self, key: str) -> bytes:
        try:
            return self.reader.get(self.bucket, self.key(key))
        except NotFound:
            raise ArtifactError(f"{self.describe(key)} does not exist") from None
        except Unreachable as exc:
            raise ArtifactError(f"cannot reach S3 for {self.describe(key)}: {exc.reason}") from None
        except S3Error as exc:
            raise ArtifactError(f"cannot read {self.describe(key)}: {exc.reason}") from None

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.key(key)}"

    def key(self, name: str) -> str:
        """The S3 key of a name under this root."""
        return f"{self.prefix}/{name}" if self.prefix else name


def open_store(uri: str, reader: S3Reader | None = None) -> Store:
    """A store for `s3://bucket/prefix` (read with `reader`, by default the environment's) or a folder."""
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        return S3Store(reader or S3Reader.from_environment(), bucket, prefix.strip("/"))
    return LocalStore(Path(uri))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Artifacts:
    """The verified contents of one version."""

    version: str
    manifest: dict[str, Any]
    model: bytes  # LightGBM's text format, as stored: the loader parses these bytes, with no decoded copy
    encoders: dict[str, Any]


def resolve_version(store: Store, version: str = LATEST) -> str:
    if version != LATEST:
        return version
    name = store.read(LATEST).decode("utf-8", "replace").strip()
    if not name or "/" in name:
        raise ArtifactError(f"{store.describe(LATEST)} does not name a version: {name[:80]!r}")
    return name


def load_artifacts(store: Store, version: str = LATEST, lightgbm_version: str | None = None) -> Artifacts:
    """Read one version's served files and verify their checksums and the LightGBM major version."""
    version = resolve_version(store, version)
    manifest = _read_manifest(store, version)
    blobs = _read_verified(store, version, manifest, SERVED)
    if lightgbm_version is not None:
        trained_with = str(manifest.get("lightgbm_version", "?"))
        if trained_with.split(".")[0] != lightgbm_version.split(".")[0]:
            raise ArtifactError(
                f"version {version} was trained with lightgbm {trained_with}; this runtime has {lightgbm_version}"
            )
    return Artifacts(version, manifest, blobs[MODEL_FILE], json.loads(blobs[ENCODERS_FILE]))


def verify_version(store: Store, version: str = LATEST) -> dict[str, bytes]:
    """Read and verify every checksummed file of a version, report and card included: publishing's check."""
    version = resolve_version(store, version)
    return _read_verified(store, version, _read_manifest(store, version), CHECKSUMMED)


def _read_manifest(store: Store, version: str) -> dict[str, Any]:
    path = f"{version}/{MANIFEST_FILE}"
    try:
        manifest = json.loads(store.read(path))
        if isinstance(manifest, dict) and isinstance(manifest["files"], dict):
            return manifest
    except (ValueError, KeyError, TypeError):
        pass
    raise ArtifactError(f"{store.describe(path)} is not a valid manifest")


def _read_verified(store: Store, version: str, manifest: dict[str, Any], names: tuple[str, ...]) -> dict[str, bytes]:
    missing = [name for name in names if name not in manifest["files"]]
    if missing:
        raise ArtifactError(f"{store.describe(version + '/' + MANIFEST_FILE)} lists no checksum for {missing}")
    blobs = {}
    for name in names:
        blob = store.read(f"{version}/{name}")
        if sha256(blob) != manifest["files"][name]:
            raise ArtifactError(f"{store.describe(version + '/' + name)} does not match its checksum in the manifest")
        blobs[name] = blob
    return blobs
