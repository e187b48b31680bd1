"""Signed S3 GETs with the standard library: how the Lambda functions read model artifacts.

Why not boto3: importing boto3 and building a client costs 0.2-0.6 s of a cold start here, and
awscrt (AWS's C runtime, 12 MB) does not fit the API function's 25 MiB next to lib_lightgbm.so.
The service needs one S3 operation, GetObject, and Signature Version 4 for it is a few HMACs.
Not for writes, listings or multipart uploads: training/publish.py and the batch scorer keep boto3.

Credentials, in the order botocore tries the sources Lambda uses: the environment
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), then the container credentials
endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI with an authorization token), which
SnapStart uses. Nothing here imports boto3 or botocore.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import quote, urlsplit

# Bounded like the botocore Config this replaces: with botocore's defaults (60 s connect
# timeout, retried) an S3 outage would outlast the API function's 10 s timeout, and the
# caller would get a gateway error instead of our 503 naming the cause.
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0
ATTEMPTS = 2
# The first retry waits a random part of a second, as botocore's standard retry mode does.
RETRY_BACKOFF = 1.0
# S3 answers a GET without a body with this payload hash (botocore signs GETs the same way).
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
RETRYABLE_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError"})
CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
)
# Container credentials are refreshed when fewer than 15 minutes are left; if the endpoint
# fails then, the old ones serve until 10 minutes are left (botocore's two windows).
REFRESH_BEFORE = timedelta(minutes=15)
MUST_REFRESH_BEFORE = timedelta(minutes=10)
CONTAINER_HOST = "169.254.170.2"
# Plain HTTP only to these or a loopback address, so the authorization token never crosses a network.
CONTAINER_HTTP_HOSTS = frozenset({CONTAINER_HOST, "169.254.170.23", "fd00:ec2::23", "localhost"})
CONTAINER_TIMEOUT = 2.0
# A region S3 names goes into a host name: only what region names look like.
REGION_NAME = re.compile(r"[a-z0-9-]{1,32}")


class S3Error(Exception):
    """A GET that did not return the object; `reason` is S3's error code or what went wrong."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class NotFound(S3Error):
    """The key does not exist (NoSuchKey). Without s3:ListBucket S3 answers AccessDenied instead."""


class AccessDenied(S3Error):
    """The credentials are valid but may not read the object (or, without ListBucket, it is missing)."""


class Unreachable(S3Error):
    """No HTTP answer: connection refused or reset, timeout, DNS or TLS failure."""


class CredentialsError(S3Error):
    """No usable credentials: none configured, the container endpoint failed, or S3 rejected them."""


@dataclass(frozen=True)
class Credentials:
    """One set of keys; also a credential source that never changes (`get` returns itself)."""

    access_key: str
    secret_key: str = field(repr=False)  # never in a log line or a traceback
    token: str | None = field(default=None, repr=False)
    expires: datetime | None = None

    def get(self) -> Credentials:
        return self


class CredentialSource(Protocol):
    def get(self) -> Credentials: ...


@dataclass(frozen=True)
class NoCredentials:
    """What the environment gives when it configures no credentials: every GET fails, naming why."""

    reason: str

    def get(self) -> Credentials:
        raise CredentialsError(self.reason)


class ContainerCredentials:
    """Credentials from the container credentials endpoint, fetched again before they expire.

    The token file is read at every fetch: its owner may rotate it.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        token_file: str | None = None,
        timeout: float = CONTAINER_TIMEOUT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CredentialsError(f"container credentials URI {url!r} is not an http(s) URL")
        if parts.scheme == "http" and not _is_local_host(parts.hostname):
            raise CredentialsError(
                f"container credentials URI {url!r}: plain http only to a loopback address or "
                + ", ".join(sorted(CONTAINER_HTTP_HOSTS))
            )
        self.url = url
        self.token = token
        self.token_file = token_file
        self.timeout = timeout
        self._clock = clock
        self._cached: Credentials | None = None
        self._lock = threading.Lock()

    def get(self) -> Credentials:
        with self._lock:
            if self._cached is None or self._expiring_within(REFRESH_BEFORE):
                try:
                    self._cached = self._fetch()
                except CredentialsError:
                    if self._cached is None or self._expiring_within(MUST_REFRESH_BEFORE):
                        raise
            return self._cached

    def _expiring_within(self, window: timedelta) -> bool:
        expires = self._cached.expires if self._cached else None
        return expires is not None and expires - self._clock() < window

    def _authorization(self) -> str | None:
        token = self.token
        if self.token_file:
            try:
                with open(self.token_file, encoding="utf-8") as file:
                    token = file.read()
            except OSError as exc:
                raise CredentialsError(f"cannot read the container authorization token file: {exc}") from None
        if token is not None and ("\r" in token or "\n" in token):
            raise CredentialsError("the container authorization token contains a line break")
        return token

    def _fetch(self) -> Credentials:
        headers = {"Accept": "application/json"}
        token = self._authorization()
        if token:
            headers["Authorization"] = token
        parts = urlsplit(self.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        failure = ""
        for _ in range(ATTEMPTS):
            try:
                connection = _connection(parts.scheme, parts.netloc, self.timeout, self.timeout)
                try:
                    connection.request("GET", target, headers=headers)
                    response = connection.getresponse()
                    status, body = response.status, response.read()
                finally:
                    connection.close()
            except (OSError, http.client.HTTPException) as exc:
                failure = f"{type(exc).__name__}: {exc}"
                continue
            if status == 200:
                return _parse_container_credentials(body)
            failure = f"it answered HTTP {status}"
        raise CredentialsError(f"cannot get credentials from the container endpoint: {failure}")


def _parse_container_credentials(body: bytes) -> Credentials:
    try:
        document = json.loads(body)
        expiration = document.get("Expiration")
        return Credentials(
            document["AccessKeyId"],
            document["SecretAccessKey"],
            document.get("Token"),
            _utc(datetime.fromisoformat(expiration)) if expiration else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CredentialsError("the container credentials endpoint answered something other than credentials") from None


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _is_local_host(host: str) -> bool:
    if host in CONTAINER_HTTP_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def credentials_from_environment(environ: Mapping[str, str] = os.environ) -> CredentialSource:
    """The credential source the environment configures; resolved once, like a botocore client's."""
    access_key = environ.get("AWS_ACCESS_KEY_ID", "")
    secret_key = environ.get("AWS_SECRET_ACCESS_KEY", "")
    if access_key and secret_key:
        return Credentials(access_key, secret_key, environ.get("AWS_SESSION_TOKEN") or None)
    if access_key or secret_key:
        names = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        present, missing = names if access_key else names[::-1]
        return NoCredentials(f"{present} is set but {missing} is not")
    relative = environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    url = f"http://{CONTAINER_HOST}{relative}" if relative else environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    if url:
        try:
            return ContainerCredentials(
                url,
                environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
                environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
            )
        except CredentialsError as exc:
            return NoCredentials(exc.reason)
    return NoCredentials(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        "or AWS_CONTAINER_CREDENTIALS_FULL_URI or _RELATIVE_URI"
    )


def region_from_environment(environ: Mapping[str, str] = os.environ) -> str:
    """AWS_REGION (Lambda's), then AWS_DEFAULT_REGION, else us-east-1 as botocore does for S3."""
    return environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def endpoint_from_environment(environ: Mapping[str, str] = os.environ) -> str | None:
    """A custom endpoint (moto, LocalStack) as boto3 reads it; None means AWS's own."""
    return environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or None


def quote_key(key: str) -> str:
    """A key as a SigV4 path for S3: every byte but A-Z a-z 0-9 - _ . ~ and / percent-encoded, once."""
    return quote(key, safe="/~")


def amz_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def canonical_request(path: str, headers: Mapping[str, str]) -> str:
    """SigV4's canonical form of a GET with no query string; S3 paths are not normalised."""
    names = sorted(headers)
    canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in names)
    return "\n".join(("GET", path, "", canonical_headers, ";".join(names), headers["x-amz-content-sha256"]))


def signed_get_headers(host: str, path: str, credentials: Credentials, region: str, moment: datetime) -> dict[str, str]:
    """Every header of a SigV4-signed S3 GET of `path` (already quoted) on `host`, Authorization included."""
    stamp = amz_date(moment)
    headers = {"host": host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": stamp}
    if credentials.token:
        headers["x-amz-security-token"] = credentials.token
    scope = f"{stamp[:8]}/{region}/s3/aws4_request"
    request_hash = hashlib.sha256(canonical_request(path, headers).encode()).hexdigest()
    string_to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{request_hash}"
    key = f"AWS4{credentials.secret_key}".encode()
    for part in (stamp[:8], region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(sorted(headers))}, Signature={signature}"
    )
    return headers


def _connection(scheme: str, netloc: str, connect_timeout: float, read_timeout: float) -> http.client.HTTPConnection:
    """A connected HTTP(S) connection whose socket then waits `read_timeout` for each read."""
    if scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            netloc, timeout=connect_timeout, context=_tls_context()
        )
    else:
        connection = http.client.HTTPConnection(netloc, timeout=connect_timeout)
    connection.connect()
    connection.sock.settimeout(read_timeout)
    return connection


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Built once: loading the system's CA certificates for every connection would cost milliseconds each."""
    return ssl.create_default_context()


def _xml_text(body: bytes, tag: str) -> str | None:
    """One element of S3's small error documents; a regular expression, not an XML parser, for untrusted input."""
    match = re.search(rb"<%s>([^<]{1,64})</%s>" % (tag.encode(), tag.encode()), body)
    return match.group(1).decode("ascii", "replace") if match else None


def _error(status: int, body: bytes) -> S3Error:
    code = _xml_text(body, "Code") or f"HTTP {status}"
    if code == "NoSuchKey":
        return NotFound(code, status)
    if code == "AccessDenied":
        return AccessDenied(code, status)
    if code in CREDENTIAL_CODES:
        return CredentialsError(code, status)
    return S3Error(code, status)


class S3Reader:
    """GETs whole objects from S3 with SigV4, keeping one connection per host alive between GETs.

    A model load is four GETs in a row: reusing the connection saves a TCP and TLS handshake
    for each after the first. GETs through one reader run one at a time.
    """

    def __init__(
        self,
        region: str,
        credentials: CredentialSource,
        endpoint: str | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        attempts: int = ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.region = region
        self.credentials = credentials
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.attempts = attempts
        self._sleep = sleep
        self._connections: dict[tuple[str, str], http.client.HTTPConnection] = {}
        self._bucket_regions: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> S3Reader:
        """The reader the Lambda functions use: region, endpoint and credentials from the environment."""
        return cls(
            region_from_environment(environ), credentials_from_environment(environ), endpoint_from_environment(environ)
        )

    def region_of(self, bucket: str) -> str:
        """The bucket's region: the reader's, until S3 has said otherwise."""
        return self._bucket_regions.get(bucket, self.region)

    def url(self, bucket: str, key: str) -> str:
        """Path-style on a custom endpoint; virtual-hosted on AWS unless the bucket name has a dot
        (a dotted name does not match S3's wildcard certificate)."""
        if self.endpoint:
            return f"{self.endpoint}/{bucket}/{quote_key(key)}"
        if "." in bucket:
            return f"https://s3.{self.region_of(bucket)}.amazonaws.com/{bucket}/{quote_key(key)}"
        return f"https://{bucket}.s3.{self.region_of(bucket)}.amazonaws.com/{quote_key(key)}"

    def get(self, bucket: str, key: str) -> bytes:
        """The object's bytes; raises NotFound, AccessDenied, Unreachable, CredentialsError or S3Error."""
        for attempt in range(1, self.attempts + 1):
            try:
                status, headers, body = self._signed_get(bucket, key)
                if status in (301, 400) and self._learn_region(bucket, headers, body):
                    status, headers, body = self._signed_get(bucket, key)
            except (OSError, http.client.HTTPException) as exc:
                where = urlsplit(self.url(bucket, key))
                failure: S3Error = Unreachable(f"could not connect to {where.scheme}://{where.netloc}: {exc}")
            else:
                if status == 200:
                    return body
                failure = _error(status, body)
                if status not in RETRYABLE_STATUS and failure.reason not in RETRYABLE_CODES:
                    raise failure
            if attempt == self.attempts:
                raise failure
            # Jitter that spreads retries, not a secret: a seeded generator is right here.
            self._sleep(random.random() * RETRY_BACKOFF)  # noqa: S311  # nosec B311
        raise ValueError(f"attempts must be at least 1, not {self.attempts}")

    def _signed_get(self, bucket: str, key: str) -> tuple[int, http.client.HTTPMessage, bytes]:
        parts = urlsplit(self.url(bucket, key))
        region = self.region_of(bucket)
        headers = signed_get_headers(parts.netloc, parts.path, self.credentials.get(), region, datetime.now(UTC))
        return self._exchange(parts.scheme, parts.netloc, parts.path, headers)

    def _learn_region(self, bucket: str, headers: http.client.HTTPMessage, body: bytes) -> bool:
        """Whether S3 named another region for the bucket (as botocore's redirect handling reads it)."""
        region = headers.get("x-amz-bucket-region") or _xml_text(body, "Region")
        if not region or region == self.region_of(bucket) or not REGION_NAME.fullmatch(region):
            return False
        self._bucket_regions[bucket] = region
        return True

    def _exchange(
        self, scheme: str, netloc: str, path: str, headers: dict[str, str]
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request and its whole response; a kept connection the server has closed is replaced once."""
        with self._lock:
            kept = self._connections.pop((scheme, netloc), None)
            if kept is not None:
                try:
                    return self._send(kept, scheme, netloc, path, headers)
                except ConnectionError:
                    kept.close()
            connection = _connection(scheme, netloc, self.connect_timeout, self.read_timeout)
            return self._send(connection, scheme, netloc, path, headers)

    def _send(
        self, connection: http.client.HTTPConnection, scheme: str, netloc: str, path: str, headers: dict[str, str]
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            self._connections[(scheme, netloc)] = connection
        return response.status, response.headers, body
