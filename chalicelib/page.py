"""The web page served at `GET /`: index.html with its stylesheet and script inlined.

Why inlined: one response needs no static routes and no relative URLs, which break on API
Gateway when the stage URL is opened without its trailing slash (`.../api`). The three files
stay separate in chalicelib/web/ so they can be edited, and opened from disk, as they are.
The Content-Security-Policy allows exactly the inlined script and style (by hash) and fetches
to any origin, because `?api=` may name an API elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

WEB = Path(__file__).resolve().parent / "web"
STYLE_TAG = '<link rel="stylesheet" href="style.css">'
SCRIPT_TAG = '<script src="app.js"></script>'


@dataclass(frozen=True)
class Page:
    html: str
    headers: dict[str, str]


@cache
def web_page() -> Page:
    """Read once per container: the files never change while it runs."""
    html = (WEB / "index.html").read_text(encoding="utf-8")
    style = (WEB / "style.css").read_text(encoding="utf-8")
    script = (WEB / "app.js").read_text(encoding="utf-8")
    for tag in (STYLE_TAG, SCRIPT_TAG):
        if html.count(tag) != 1:
            raise ValueError(f"chalicelib/web/index.html must contain {tag} exactly once")
    html = html.replace(STYLE_TAG, f"<style>{style}</style>").replace(SCRIPT_TAG, f"<script>{script}</script>")
    policy = "; ".join(
        [
            "default-src 'none'",
            f"script-src '{_sha256(script)}'",
            f"style-src '{_sha256(style)}'",
            "connect-src http: https:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    headers = {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }
    return Page(html, headers)


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
