"""The report and the model card of a trained version: present, checksummed, and showing real charts."""

import base64
import io
import json
import re
import shutil

import lightgbm
import pytest
from PIL import Image

from chalicelib.artifacts import (
    CARD_FILE,
    ENCODERS_FILE,
    LATEST,
    MANIFEST_FILE,
    MODEL_FILE,
    REPORT_FILE,
    load_artifacts,
    open_store,
    sha256,
    verify_version,
)
from chalicelib.encoders import Encoders
from training.data import Splits
from training.model_card import render_card
from training.report import INTERVALS_SECTION, SECTIONS, ReportError, render_report, rerender, score_splits


@pytest.fixture(scope="module")
def version_dir(artifacts_dir):
    return artifacts_dir / (artifacts_dir / LATEST).read_text().strip()


@pytest.fixture(scope="module")
def manifest(version_dir):
    return json.loads((version_dir / MANIFEST_FILE).read_text())


def sections(page: str) -> dict[str, str]:
    """Each <section>'s heading and body."""
    return dict(re.findall(r"<section><h2>(.*?)</h2>(.*?)</section>", page, flags=re.S))


def images(fragment: str) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(base64.b64decode(data)))
        for data in re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', fragment)
    ]


def assert_is_a_chart(image: Image.Image) -> None:
    assert image.format == "PNG"
    width, height = image.size
    assert 300 <= width <= 1_000 and 150 <= height <= 1_000, image.size
    colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert len(colours) >= 20, "a blank or single-colour image"
    most_common = max(count for count, _ in colours)
    assert most_common < 0.97 * width * height, "almost nothing drawn"


def test_every_version_has_a_self_contained_report_with_each_chart(version_dir, manifest):
    page = (version_dir / REPORT_FILE).read_text()
    found = sections(page)
    assert list(found) == [*SECTIONS, INTERVALS_SECTION]  # training calibrates intervals for every version
    assert "<script" not in page and "<link" not in page and "url(" not in page
    assert not re.search(r'(src|href)="(?!data:image/png;base64,)', page), "the page fetches something"
    for title, body in found.items():
        charts = images(body)
        assert len(charts) == (0 if title == SECTIONS[0] else 1), title
        for chart in charts:
            assert_is_a_chart(chart)
    metrics = found[SECTIONS[0]]
    for split in ("eval", "holdout"):
        for model in ("lightgbm", "median", "linear"):
            assert f"<td>{split}</td><td class='l'>{model}</td>" in metrics
    assert f"{manifest['metrics']['holdout']['lightgbm']['MAE']:,.0f}" in metrics
    assert len(page) < 1_000_000


def test_report_and_card_are_in_the_manifest_checksums(version_dir, manifest):
    for name in (REPORT_FILE, CARD_FILE):
        assert manifest["files"][name] == sha256((version_dir / name).read_bytes())
    blobs = verify_version(open_store(str(version_dir.parent)))
    assert set(blobs) == {MODEL_FILE, ENCODERS_FILE, REPORT_FILE, CARD_FILE}


def test_the_card_states_data_metrics_limits_and_versions(version_dir, manifest):
    card = (version_dir / CARD_FILE).read_text()
    assert card == render_card(manifest)
    for heading in ("## Intended use", "## Data", "## Metrics", "## Limits", "## Versions"):
        assert heading in card
    data = manifest["training_data"]
    assert data["fingerprint"] in card
    for rule, count in data["dropped"].items():
        assert f"| {rule} | {count:,} |" in card
    assert f"| holdout | {data['rows']['holdout']:,} | {data['period']['holdout'][0]} |" in card
    assert f"LightGBM {manifest['lightgbm_version']}" in card and manifest["version"] in card
    assert "synthetic panel" not in card  # the fixture's version does not say where its data came from
    synthetic = render_card(manifest | {"training_data": data | {"source": "synthetic: generate_synthetic"}})
    assert "not how it performs on the real housing market" in synthetic
    with_intervals = render_card(manifest | {"intervals": CRAFTED_INTERVALS})
    assert "Prediction interval coverage (nominal: observed, on a fresh synthetic draw): 80%: 79.0%, 95%: 95.1%." in (
        with_intervals
    )


# The shape training.intervals writes: the kept method's coverage per level, per check.
CRAFTED_INTERVALS = {
    "method": "relative",
    "coverage": {
        "fresh_draw": {"relative": {"0.8": {"coverage": 0.79}, "0.95": {"coverage": 0.951}}},
        "cross_fitted_by_zipcode": {"relative": {"0.8": {"coverage": 0.5}, "0.95": {"coverage": 0.5}}},
    },
}


def test_interval_coverage_appears_once_the_manifest_has_intervals(version_dir, manifest, splits):
    booster = lightgbm.Booster(model_str=(version_dir / MODEL_FILE).read_text())
    encoders = Encoders.from_dict(json.loads((version_dir / ENCODERS_FILE).read_text()))
    page = render_report(manifest | {"intervals": CRAFTED_INTERVALS}, booster, score_splits(booster, encoders, splits))
    found = sections(page)
    assert list(found) == [*SECTIONS, INTERVALS_SECTION]
    body = found[INTERVALS_SECTION]
    (chart,) = images(body)
    assert_is_a_chart(chart)
    assert "<td>80 %</td><td>80.0</td><td>79.0</td>" in body and "<td>95 %</td><td>95.0</td><td>95.1</td>" in body


def test_make_report_rerenders_latest_from_its_own_data_only(artifacts_dir, splits, tmp_path):
    root = tmp_path / "artifacts"
    shutil.copytree(artifacts_dir, root)
    version = (root / LATEST).read_text().strip()
    (root / version / REPORT_FILE).write_text("stale")
    with pytest.raises(ReportError, match="was trained on data with fingerprint"):
        rerender(root, LATEST, Splits(splits.train.iloc[1:], splits.eval, splits.holdout, splits.dropped))
    assert (root / version / REPORT_FILE).read_text() == "stale"

    folder = rerender(root, LATEST, splits)
    assert folder == root / version
    assert list(sections((folder / REPORT_FILE).read_text())) == [*SECTIONS, INTERVALS_SECTION]
    verify_version(open_store(str(root)))
    assert load_artifacts(open_store(str(root))).model == (artifacts_dir / version / MODEL_FILE).read_bytes()
