"""/docs as a person reads it in Debian's Chromium: the live protocol's tables and the
named response schemas are on the page."""

import shutil

import pytest

from conftest import make_server

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def docs_page():
    from playwright.sync_api import sync_playwright

    with make_server(max_sessions=1) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.errors = []
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(f"{server.url}/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=15000)
        yield page
        browser.close()


def test_docs_show_the_live_protocol_as_tables(docs_page):
    info = docs_page.locator(".information-container")
    assert any("The live protocol" in h for h in info.locator("h2").all_text_contents())
    assert info.locator("table").count() == 3  # messages in, messages out, close codes
    # the close codes render as a table a reader can scan, not as pipe-separated text
    cells = info.locator("table td").all_text_contents()
    for code in ("1008", "1009", "1013"):
        assert code in cells
    for kind in ("start", "step", "done", "error"):
        assert kind in cells
    assert docs_page.errors == []


def test_docs_show_the_run_record_schema(docs_page):
    docs_page.locator(".opblock-summary-path", has_text="/api/runs/{run_id}/export").click()
    response = docs_page.locator(".responses-wrapper").first
    response.wait_for(timeout=10000)
    docs_page.locator(".tab", has_text="Schema").first.click()
    docs_page.wait_for_selector(".model-title", timeout=10000)
    titles = docs_page.locator(".model-title").all_text_contents()
    assert any("RunRecord" in t for t in titles)
    assert docs_page.errors == []
