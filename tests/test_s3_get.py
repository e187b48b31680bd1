"""The service's S3 client: signatures equal botocore's, GETs against moto and real local servers.

Why each part: the signing is hand-written, so botocore's signer is the reference for every
header; keys with odd characters go through moto to show S3 decodes our paths back to the key;
faults S3 answers (403, throttling, a dropped keep-alive, a stalled read) come from a real HTTP
server on loopback; the container credentials endpoint is one too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import boto3
import botocore.auth
import botocore.credentials
import pytest
from botocore.awsrequest import AWSRequest
from botocore.config import Config

from chalicelib.s3_get import (
    AccessDenied,
    ContainerCredentials,
    Credentials,
    CredentialsError,
    NoCredentials,
    NotFound,
    S3Error,
    S3Reader,
    Unreachable,
    canonical_request,
    credentials_from_environment,
    signed_get_headers,
)
from tests.conftest import ROOT, free_port

ODD_KEYS = [
    "models/house-prices/LATEST",
    "a b/c  d.txt",
    "ünïcødé/ключ/価格.json",
    "plus+equals=tilde~star*.txt",
    "query?hash#amp&semi;colon:at@comma,dollar$",
    "percent%20not-a-space/%2F",
    "dots/./and/../parent//double",
    "brackets[]{}()'\"!^`|\\",
]
MOMENT = datetime(2026, 11, 29, 4, 59, 58, tzinfo=UTC)
TOKEN = "FwoGZXIvYXdzEBYaD" + "x" * 40 + "/+="


def botocore_signed(url: str, credentials: Credentials, region: str, monkeypatch) -> tuple[dict[str, str], str]:
    """botocore's S3 signer on a GET of `url` at MOMENT: the headers it sets and the canonical request it signed."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: MOMENT.replace(tzinfo=None))
    theirs = botocore.credentials.Credentials(credentials.access_key, credentials.secret_key, credentials.token)
    signer = botocore.auth.S3SigV4Auth(theirs, "s3", region)
    request = AWSRequest(method="GET", url=url)
    signer.add_auth(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    del request.headers["Authorization"]
    return headers, signer.canonical_request(request)


@pytest.mark.parametrize("key", ODD_KEYS)
@pytest.mark.parametrize("token", [None, TOKEN])
@pytest.mark.parametrize(
    ("endpoint", "region"), [("http://127.0.0.1:9000", "us-east-1"), (None, "eu-west-1"), ("https://s3.local", "x-1")]
)
def test_the_signature_equals_botocores(key, token, endpoint, region, monkeypatch):
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    url = urlsplit(S3Reader(region, credentials, endpoint).url("house-prices-art", key))
    ours = signed_get_headers(url.netloc, url.path, credentials, region, MOMENT)
    theirs, their_canonical = botocore_signed(url.geturl(), credentials, region, monkeypatch)
    assert canonical_request(url.path, {k: v for k, v in ours.items() if k != "authorization"}) == their_canonical
    assert theirs == {k: v for k, v in ours.items() if k != "host"}  # botocore leaves Host to the HTTP client
    assert ("x-amz-security-token" in ours) == bool(token)


@pytest.mark.parametrize("key", ODD_KEYS)
def test_urls_equal_the_ones_boto3_sends(key):
    """Path-style on a custom endpoint, virtual-hosted on AWS, and a dotted bucket path-style on AWS."""
    cases = [
        ("http://127.0.0.1:9", "us-east-1", "art", {"addressing_style": "path"}),
        (None, "eu-west-1", "art", {}),
        (None, "eu-west-1", "art.with.dots", {}),
    ]
    for endpoint, region, bucket, s3_config in cases:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(s3=s3_config),
        )
        sent: list[str] = []

        def capture(request, sent=sent, **_):
            sent.append(request.url)
            raise InterruptedError("captured; not sent")

        client.meta.events.register("before-send.s3.GetObject", capture)
        with pytest.raises(InterruptedError):
            client.get_object(Bucket=bucket, Key=key)
        assert S3Reader(region, Credentials("x", "x"), endpoint).url(bucket, key) == sent[0]


def test_odd_keys_round_trip_through_moto(s3, s3_server, bucket):
    reader = s3_server.reader()
    for n, key in enumerate(ODD_KEYS):
        s3.put_object(Bucket=bucket, Key=key, Body=f"{n}:{key}".encode())
    assert [reader.get(bucket, key) for key in ODD_KEYS] == [f"{n}:{k}".encode() for n, k in enumerate(ODD_KEYS)]
    big = bytes(range(256)) * 12_000  # 3 MB, as a model.txt
    s3.put_object(Bucket=bucket, Key="v/model.txt", Body=big)
    assert reader.get(bucket, "v/model.txt") == big


def test_missing_key_and_bucket_through_moto(s3_server, bucket):
    reader = s3_server.reader()
    with pytest.raises(NotFound) as missing:
        reader.get(bucket, "no/such key")
    assert (missing.value.reason, missing.value.status) == ("NoSuchKey", 404)
    with pytest.raises(S3Error) as no_bucket:
        reader.get(f"{bucket}-gone", "LATEST")
    assert type(no_bucket.value) is S3Error and no_bucket.value.reason == "NoSuchBucket"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"object"
    delay: float = 0.0
    hang_up: bool = False  # close the connection after answering, without saying so
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class LocalServer:
    """A real HTTP server on a loopback port that answers from a script and records what it got."""

    replies: list[Reply] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> LocalServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                reply = server.replies.pop(0) if server.replies else Reply()
                time.sleep(reply.delay)
                self.send_response(reply.status)
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)
                self.close_connection = reply.hang_up

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *_: None  # a client that gave up (the stalled read) is no error here
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()
        return self


@pytest.fixture
def local_servers() -> Iterator[list[LocalServer]]:
    servers: list[LocalServer] = []
    yield servers
    for server in servers:
        assert server.httpd is not None
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture
def fake_s3(local_servers) -> LocalServer:
    server = LocalServer().start()
    local_servers.append(server)
    return server


def s3_error(code: str) -> bytes:
    return f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>m</Message></Error>".encode()


def reader_of(server: LocalServer, sleeps: list[float] | None = None, **options) -> S3Reader:
    sleep = (sleeps if sleeps is not None else []).append
    return S3Reader("us-east-1", Credentials("AKID", "secret", "tok"), server.url, sleep=sleep, **options)


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (403, "AccessDenied", AccessDenied),
        (403, "InvalidAccessKeyId", CredentialsError),
        (403, "SignatureDoesNotMatch", CredentialsError),
        (400, "ExpiredToken", CredentialsError),
        (404, "NoSuchKey", NotFound),
        (301, "PermanentRedirect", S3Error),
    ],
)
def test_error_answers_are_typed_and_not_retried(fake_s3, status, code, error):
    fake_s3.replies = [Reply(status, s3_error(code))]
    with pytest.raises(error) as raised:
        reader_of(fake_s3).get("art", "models/LATEST")
    assert (type(raised.value), raised.value.reason, raised.value.status) == (error, code, status)
    assert len(fake_s3.requests) == 1


def test_the_request_is_signed_with_the_session_token(fake_s3):
    assert reader_of(fake_s3).get("art", "models/a b+c") == b"object"
    path, headers = fake_s3.requests[0]
    assert path == "/art/models/a%20b%2Bc"
    assert headers["x-amz-security-token"] == "tok"
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID/")
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token," in headers["authorization"]


@pytest.mark.parametrize(("status", "code"), [(503, "SlowDown"), (500, "InternalError"), (400, "RequestTimeout")])
def test_throttling_and_5xx_are_retried_once(fake_s3, status, code):
    sleeps: list[float] = []
    fake_s3.replies = [Reply(status, s3_error(code))]
    assert reader_of(fake_s3, sleeps).get("art", "k") == b"object"
    assert len(fake_s3.requests) == 2 and len(sleeps) == 1 and 0 <= sleeps[0] < 1
    fake_s3.replies = [Reply(status, s3_error(code))] * 2
    with pytest.raises(S3Error, match=code):
        reader_of(fake_s3, sleeps).get("art", "k")
    assert len(fake_s3.requests) == 4


@pytest.mark.parametrize(
    "wrong_region",
    [
        Reply(301, s3_error("PermanentRedirect"), headers={"x-amz-bucket-region": "eu-west-1"}),
        Reply(400, s3_error("AuthorizationHeaderMalformed").replace(b"</Code>", b"</Code><Region>eu-west-1</Region>")),
    ],
)
def test_a_bucket_in_another_region_is_followed_and_remembered(fake_s3, wrong_region):
    sleeps: list[float] = []
    reader = reader_of(fake_s3, sleeps)
    fake_s3.replies = [wrong_region]
    assert reader.get("art", "a") == b"object" and reader.get("art", "b") == b"object"
    scopes = [headers["authorization"].split("/")[2] for _, headers in fake_s3.requests]
    assert scopes == ["us-east-1", "eu-west-1", "eu-west-1"] and sleeps == []
    assert reader.region_of("art") == "eu-west-1" and reader.region_of("other") == "us-east-1"


def test_a_region_that_is_no_region_name_is_not_followed(fake_s3):
    fake_s3.replies = [Reply(301, s3_error("PermanentRedirect"), headers={"x-amz-bucket-region": "evil.example/x"})]
    with pytest.raises(S3Error, match="PermanentRedirect"):
        reader_of(fake_s3).get("art", "a")
    assert len(fake_s3.requests) == 1


def test_a_kept_connection_the_server_dropped_is_replaced_without_a_retry(fake_s3):
    sleeps: list[float] = []
    reader = reader_of(fake_s3, sleeps)
    fake_s3.replies = [Reply(body=b"first", hang_up=True), Reply(body=b"second"), Reply(body=b"third")]
    assert [reader.get("art", "a"), reader.get("art", "b"), reader.get("art", "c")] == [b"first", b"second", b"third"]
    assert sleeps == []


def test_a_stalled_read_times_out_as_unreachable(fake_s3):
    fake_s3.replies = [Reply(delay=1.0)]
    with pytest.raises(Unreachable, match="timed out"):
        reader_of(fake_s3, read_timeout=0.2, attempts=1).get("art", "k")


def test_a_closed_port_is_unreachable_after_one_retry():
    sleeps: list[float] = []
    reader = S3Reader("us-east-1", Credentials("a", "b"), f"http://127.0.0.1:{free_port()}", sleep=sleeps.append)
    with pytest.raises(Unreachable, match=r"could not connect to http://127\.0\.0\.1:\d+: .*Connection refused"):
        reader.get("art", "k")
    assert len(sleeps) == 1


def container_reply(key: str, expires: datetime | None) -> Reply:
    document = {"AccessKeyId": key, "SecretAccessKey": f"secret-{key}", "Token": f"token-{key}"}
    if expires is not None:
        document["Expiration"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    return Reply(body=json.dumps(document).encode())


@pytest.fixture
def endpoint(local_servers) -> LocalServer:
    server = LocalServer().start()
    local_servers.append(server)
    return server


def test_container_credentials_with_a_token_sign_the_get(fake_s3, endpoint):
    endpoint.replies = [container_reply("ASIA1", datetime.now(UTC) + timedelta(hours=6))]
    environ = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{endpoint.url}/2018-06-01/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "Bearer lambda-token",
        "AWS_ENDPOINT_URL_S3": fake_s3.url,
        "AWS_REGION": "eu-central-1",
    }
    reader = S3Reader.from_environment(environ)
    assert reader.get("art", "LATEST") == b"object"
    assert reader.get("art", "LATEST") == b"object"
    assert endpoint.requests == [("/2018-06-01/credentials", endpoint.requests[0][1])]
    assert endpoint.requests[0][1]["authorization"] == "Bearer lambda-token"
    for _, headers in fake_s3.requests:
        assert headers["x-amz-security-token"] == "token-ASIA1"
        assert "Credential=ASIA1/" in headers["authorization"] and "/eu-central-1/s3/" in headers["authorization"]


def test_the_token_file_is_read_at_every_fetch(endpoint, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("first-token")
    soon = datetime.now(UTC) + timedelta(minutes=5)  # inside the refresh window: every get fetches
    endpoint.replies = [container_reply("A", soon), container_reply("B", soon)]
    source = credentials_from_environment(
        {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{endpoint.url}/creds",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": "ignored: the file wins",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
        }
    )
    assert source.get().access_key == "A"
    token_file.write_text("rotated-token")
    assert source.get().access_key == "B"
    assert [headers["authorization"] for _, headers in endpoint.requests] == ["first-token", "rotated-token"]


def test_container_credentials_refresh_before_they_expire(endpoint):
    now = [datetime(2026, 11, 29, 12, 0, tzinfo=UTC)]
    expiry = now[0] + timedelta(hours=1)
    endpoint.replies = [container_reply("A", expiry), container_reply("B", expiry + timedelta(hours=1))]
    source = ContainerCredentials(f"{endpoint.url}/creds", clock=lambda: now[0])
    assert source.get().access_key == "A"
    now[0] = expiry - timedelta(minutes=16)
    assert source.get().access_key == "A" and len(endpoint.requests) == 1
    now[0] = expiry - timedelta(minutes=14)
    assert source.get() == Credentials("B", "secret-B", "token-B", expiry + timedelta(hours=1))
    assert len(endpoint.requests) == 2

    endpoint.replies = [Reply(500, b"down")] * 4
    now[0] = expiry + timedelta(hours=1) - timedelta(minutes=12)  # should refresh, may still use B
    assert source.get().access_key == "B"
    now[0] = expiry + timedelta(hours=1) - timedelta(minutes=9)  # must refresh
    with pytest.raises(CredentialsError, match="container endpoint: it answered HTTP 500"):
        source.get()


def test_secrets_stay_out_of_repr():
    shown = repr(Credentials("AKID", "the-secret-key", "the-session-token"))
    assert "AKID" in shown and "the-secret" not in shown and "the-session" not in shown


def test_credential_precedence_follows_botocore(endpoint):
    container = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{endpoint.url}/creds"}
    keys = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"}
    assert credentials_from_environment(container | keys) == Credentials("AKID", "s", "t")
    assert credentials_from_environment({"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s"}).get().token is None
    partial = credentials_from_environment(container | {"AWS_ACCESS_KEY_ID": "AKID"})
    assert partial == NoCredentials("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
    relative = credentials_from_environment(container | {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/creds/x"})
    assert isinstance(relative, ContainerCredentials) and relative.url == "http://169.254.170.2/v2/creds/x"
    assert endpoint.requests == []
    with pytest.raises(CredentialsError, match="no AWS credentials: set AWS_ACCESS_KEY_ID"):
        S3Reader.from_environment({}).get("art", "LATEST")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://example.com/creds"}, "plain http only to a loopback"),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "ftp://127.0.0.1/creds"}, "is not an http"),
        (
            {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/c", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "a\nb"},
            "contains a line break",
        ),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://[::1]:9/c"}, "cannot get credentials from the container"),
    ],
)
def test_bad_container_settings_are_credential_errors(environ, message):
    with pytest.raises(CredentialsError, match=message):
        credentials_from_environment(environ).get()


def test_an_endpoint_answering_nonsense_is_a_credential_error(endpoint):
    endpoint.replies = [Reply(body=b"<html>captive portal</html>")]
    with pytest.raises(CredentialsError, match="something other than credentials"):
        ContainerCredentials(f"{endpoint.url}/creds").get()


def test_a_get_imports_neither_boto3_nor_botocore(s3, s3_server, bucket):
    s3.put_object(Bucket=bucket, Key="m/LATEST", Body=b"v1")
    probe = (
        "import sys\n"
        "from chalicelib.artifacts import open_store\n"
        f"assert open_store('s3://{bucket}/m').read('LATEST') == b'v1'\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'boto3', 'botocore', 's3transfer', 'urllib3'}))\n"
    )
    environ = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_ENDPOINT_URL_S3": s3_server.url}
    done = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r})\n{probe}"],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"
