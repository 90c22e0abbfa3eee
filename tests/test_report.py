"""The HTML report of the demo run opens in a real (headless) Chromium and shows plots.

Needs Debian's ``chromium`` and the ``playwright`` Python package (in the ``test`` extra;
it drives the system browser, nothing is downloaded). ``.ci/run`` installs Chromium; the
test skips with the reason when either is missing.
"""

from __future__ import annotations

import shutil

import pytest
from conftest import run_snakemake

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def report(demo_run):
    path = demo_run / "report.html"
    run_snakemake(demo_run, "--report", str(path))
    return path


def _browser():
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    return sync_api.sync_playwright()


def _categories(page) -> list[str]:
    items = page.locator("li:has-text('Results') ~ li a").all_inner_texts()
    return [text.strip() for text in items if text.strip()]


def _first_plot(page, report, category: str, categories: list[str]) -> list:
    """Open ``category``, then its subcategories in turn until one lists a PNG; show the
    PNG and return the rendered sizes of the PNG images on the page."""
    page.goto(report.as_uri())
    page.locator("a", has_text=category).first.click()
    skip = {"", "Results", *categories}
    subcategories = [
        s.strip() for s in page.locator("li a").all_inner_texts() if s.strip() not in skip
    ]
    for sub in subcategories:
        page.locator("a", has_text=sub).first.click()
        rows = page.locator("tr", has_text=".png")
        if rows.count():
            rows.first.locator("a[iconname=eye]").click()
            page.wait_for_timeout(500)
            return page.locator("img[src^='data:image/png']").evaluate_all(
                "els => els.map(e => [e.naturalWidth, e.naturalHeight])"
            )
        page.goto(report.as_uri())
        page.locator("a", has_text=category).first.click()
    return []


def test_report_renders_a_plot_of_every_data_set(report, tmp_path):
    assert report.stat().st_size > 100_000
    with _browser() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(report.as_uri())
        page.wait_for_selector("text=Results", timeout=30_000)
        categories = _categories(page)
        for dataset in ("demo_field", "demo_standard", "demo_timeseries", "demo_forced"):
            assert any(c.startswith(dataset) for c in categories), (dataset, categories)
        shown = {}
        for category in [c for c in categories if c.startswith("demo_")]:
            shown[category] = _first_plot(page, report, category, categories)
            page.screenshot(path=str(tmp_path / f"{category.split()[0]}.png"))
        browser.close()
    for category, sizes in shown.items():
        assert sizes and min(sizes[0]) > 100, (category, sizes)
