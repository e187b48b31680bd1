"""Takes docs/page.png, the README's picture of the web page: `make screenshot`.

Serves the project with the model in artifacts/ (`make train`), loads the page in Chromium
and asks for the example's price. A dev tool: it uses the tests' server and browser helpers.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests.browser import chromium, chromium_path
from tests.conftest import ROOT, serve_project

MAX_BYTES = 150_000


def take(out: Path, artifacts: Path) -> int:
    """Write the screenshot; return its size in bytes."""
    browser = chromium_path()
    if browser is None:
        raise FileNotFoundError("chromium not found: apt-get install -y chromium")
    with (
        tempfile.TemporaryDirectory() as project,
        serve_project(Path(project), artifacts.resolve()) as url,
        chromium(browser, viewport=(960, 700)) as context,
    ):
        page = context.new_page()
        page.goto(url + "/")
        page.wait_for_selector("#fields input")
        page.click("#predict")
        page.wait_for_selector("#price:not([hidden])")
        page.screenshot(path=str(out), full_page=True)
    return out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "page.png")
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    args = parser.parse_args()
    size = take(args.out, args.artifacts)
    print(f"wrote {args.out} ({size:,} bytes)")
    if size > MAX_BYTES:
        raise SystemExit(f"{args.out} is over {MAX_BYTES:,} bytes: use a smaller viewport")


if __name__ == "__main__":
    main()
