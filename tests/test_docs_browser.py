"""/docs as a person reads it in Debian's Chromium: the live protocol's tables and the
named response schemas are on the page."""

import pytest

from conftest import make_server, open_page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def docs_page(browser):
    with make_server(max_sessions=1) as server, open_page(browser) as page:
        page.goto(f"{server.url}/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=15000)
        yield page


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
