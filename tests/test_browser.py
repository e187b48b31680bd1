"""The web page in a real browser (Chromium), calling the API across origins as users will.

Two `chalice local` servers on two ports are two origins: `server` allows any origin (the
local stage's `*`), `strict` allows only https://only-this.example. The page loaded from one
calls the API on the other, so the browser enforces CORS for real, preflight included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import BrowserContext, Page

from tests.browser import chromium, chromium_path, require
from tests.conftest import ROOT, serve_project

EXAMPLES = ROOT / "examples"
ALLOWED_ORIGIN = "https://only-this.example"


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserContext]:
    path = require("chromium", chromium_path(), "apt-get install -y chromium (.ci/run does)")
    with chromium(path) as context:
        yield context


@pytest.fixture(scope="module")
def strict(artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_project(tmp_path_factory.mktemp("strict"), artifacts_dir, CORS_ALLOW_ORIGIN=ALLOWED_ORIGIN) as url:
        yield url


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    page = browser.new_page()
    yield page
    page.close()


def example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def open_form(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#fields input")


def field(page: Page, name: str):
    return page.locator(f'.field[data-field="{name}"]')


def test_page_on_one_origin_prices_a_record_with_the_api_on_another(page: Page, strict: str, server: str) -> None:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    open_form(page, f"{strict}/?api={server}")
    # The form starts with examples/raw_record.json, built from the API's own field list.
    raw = example("raw_record.json")
    assert {name: page.input_value(f'#fields input[name="{name}"]') for name in raw} == {
        name: str(value) for name, value in raw.items()
    }
    page.click("#predict")
    page.wait_for_selector("#price:not([hidden])")
    assert page.text_content("#price").startswith("$")
    assert "taken from city_full" in page.text_content("#warnings")
    api_calls = [url for url in seen if not url.startswith(strict)]
    assert {url.removeprefix(server) for url in api_calls} >= {"/health", "/openapi.json", "/predict_price"}
    assert page.text_content("#model-version").startswith("model ")


def test_each_bad_field_shows_its_message_next_to_it(page: Page, strict: str, server: str) -> None:
    open_form(page, f"{strict}/?api={server}")
    page.click("#load-bad-example")
    page.click("#predict")
    page.wait_for_selector(".field.invalid")
    expected = {p["field"]: p["message"] for p in example("bad_record.400.json")["problems"]}
    invalid = page.locator(".field.invalid")
    assert {invalid.nth(i).get_attribute("data-field") for i in range(invalid.count())} == set(expected)
    for name, message in expected.items():
        assert field(page, name).locator(".message").text_content() == message
        assert field(page, name).locator("input").get_attribute("aria-invalid") == "true"
    assert page.is_hidden("#price")
    page.click("#load-example")
    assert page.locator(".field.invalid").count() == 0


def test_the_page_uses_its_own_origin_by_default(page: Page, server: str) -> None:
    open_form(page, server + "/")
    page.click("#predict")
    page.wait_for_selector("#price:not([hidden])")
    assert page.text_content("#api-url") == server + "/"


def test_an_origin_the_stage_does_not_allow_is_refused_by_the_browser(page: Page, server: str, strict: str) -> None:
    # The API itself answers; it names another origin as the one allowed.
    health = requests.get(strict + "/health", headers={"Origin": server}, timeout=10)
    assert health.status_code == 200 and health.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{server}/?api={strict}")
    page.wait_for_selector("#fields.error")
    assert "Could not reach the API" in page.text_content("#fields")
    # A POST with a JSON body needs a preflight; the browser refuses it too.
    outcome = page.evaluate(
        """async (url) => {
            try {
                await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
                return "answered";
            } catch (error) { return "refused: " + error.message; }
        }""",
        strict + "/predict_price",
    )
    assert outcome.startswith("refused")
    assert any("blocked by CORS policy" in text for text in console), console


def test_interval_and_contributions_are_drawn_from_the_apis_answer(page: Page, server: str) -> None:
    """The page asks for an explanation (the API's /openapi.json offers one) and draws the API's own
    interval and largest contributions, grouped back to the raw record's fields."""
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(json.loads(r.post_data)) if r.url.endswith("/predict_price") else None)
    open_form(page, server + "/")
    page.click("#predict")
    page.wait_for_selector("#chart:not([hidden])")
    assert sent[0] == {"records": [example("raw_record.json")], "explain": True}
    answer = requests.post(server + "/predict_price", json=sent[0], timeout=10).json()
    lower, upper = (round(answer[key][0]) for key in ("lower", "upper"))
    assert page.text_content("#interval") == f"80% of prices like this fall between ${lower:,} and ${upper:,}"
    fields = answer["explanations"][0]["fields"]
    names = page.locator(".bar-name").all_text_contents()
    assert names == [f["field"] for f in fields[: len(names)]] and 0 < len(names) <= 8
    assert page.locator(".bar.negative").count() == sum(f["value"] < 0 for f in fields[: len(names)])
    assert page.text_content("#baseline") == f"${round(answer['explanations'][0]['baseline']):,}"
