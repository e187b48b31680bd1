"""Loopback ports and waiting for a local server to answer."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Return once `url` answers at all (any status counts: the server is up).

    With `process`, give up at once if it has exited: a server that died will never answer.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{url}: the server exited with {process.returncode} before answering") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f} s") from None
            time.sleep(0.1)
