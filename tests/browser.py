"""Debian's Chromium driven by Playwright: the one way tests and docs/screenshot.py start a browser.

Playwright's own browser download (`playwright install`) cannot work on these machines, so
the system `chromium` is launched by path, headless, with a fresh profile. Under CI=true a
missing browser fails the run: a browser test that skips in CI tests nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import BrowserContext, sync_playwright

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def require(tool: str, path: str | None, install: str) -> str:
    """`path` if the tool is there; otherwise skip, or fail under CI=true."""
    if path:
        return path
    message = f"{tool} not found: {install}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI must run this test, so it fails instead of skipping)")
    pytest.skip(message)


def chromium_path() -> str | None:
    return shutil.which("chromium")


@contextmanager
def chromium(executable: str, viewport: tuple[int, int] = (1000, 900)) -> Iterator[BrowserContext]:
    """A browser context on a fresh user-data folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            args=ARGS,
            headless=True,
            viewport={"width": viewport[0], "height": viewport[1]},
        )
        try:
            yield context
        finally:
            context.close()
