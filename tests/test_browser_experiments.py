"""The Experiments page in Debian's Chromium: run the quick glorot2010 from the page;
the progress bar moves, and the PASS/FAIL and measured numbers shown are the API's."""

import math
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = pytest.mark.browser


SERVER_SETTINGS = {"max_sessions": 2}  # for conftest's server


def shown(value: float) -> str:
    """format.js fmt(v, 4): toPrecision(4), exponential outside [1e-3, 1e4)."""
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        mantissa, exponent = f"{value:.3e}".split("e")
        return f"{mantissa}e{int(exponent):+d}"
    digits = 4 - 1 - math.floor(math.log10(abs(value)))
    return f"{value:.{max(digits, 0)}f}"


def test_quick_glorot_from_the_page_shows_the_apis_numbers(page, server):
    page.goto(f"{server.url}/#page=experiments&experiments.name=glorot2010")
    page.wait_for_selector("#exp-list button, .exp-list button")
    assert page.locator("#exp-title").text_content().startswith("Glorot & Bengio 2010")
    assert page.locator("#exp-quick").is_checked()  # quick by default
    assert page.locator("#page-lab").is_hidden()  # one page at a time
    assert page.evaluate("() => document.getElementById('exp-progress').value") == 0
    # every value the bar shows, sampled in the page
    page.evaluate("""() => { window.barSeen = [];
        setInterval(() => window.barSeen.push(document.getElementById('exp-progress').value),
                    20); }""")
    page.click("#exp-run")
    # the bar moves from 0 to all runs done, never back
    page.wait_for_function("() => document.getElementById('exp-progress').value > 0",
                           timeout=120_000)
    page.wait_for_selector("#exp-checks tbody tr", timeout=120_000)
    seen = page.evaluate("() => window.barSeen")
    assert seen[0] == 0 and seen[-1] == 2 and seen == sorted(seen), seen
    text = page.locator("#exp-progress-text").text_content()
    assert text.startswith("2 / 2 runs · done"), text
    job_id = page.evaluate("() => document.getElementById('exp-report').getAttribute('href')") \
        .split("/")[-2]
    result = httpx.get(f"{server.url}/api/experiments/jobs/{job_id}/result").json()
    rows = page.locator("#exp-checks tbody tr")
    assert rows.count() == len(result["checks"]) == 2
    for i, check in enumerate(result["checks"]):
        row = rows.nth(i)
        assert row.locator("td.name span").text_content() == check["name"]
        assert row.locator("td.measured").text_content() == shown(check["measured"])
        assert row.locator("td.published").text_content() == shown(check["published"])
        assert row.locator("td.verdict").text_content() == ("PASS" if check["pass"] else "FAIL")
    # Glorot's 0.5 and 0.8 are reproduced: both rows read PASS
    assert [rows.nth(i).locator("td.verdict").text_content() for i in range(2)] == \
        ["PASS", "PASS"]
    assert page.locator("#exp-verdict").text_content().startswith("2 of 2 checks pass")
    # the paper's figures are drawn: 3 plots, with the traces of the result
    page.wait_for_function("() => document.querySelectorAll('#exp-figures .exp-figure')"
                           ".length === 3"
                           " && [...document.querySelectorAll('#exp-figures .exp-figure')]"
                           ".every(d => d.data && d.data.length > 0)")
    traces = page.evaluate("() => [...document.querySelectorAll('#exp-figures .exp-figure')]"
                           ".map(d => d.data.length)")
    assert traces == [len(f["data"]) for f in result["figures"]]
    report = page.locator("#exp-report")
    assert report.is_visible() and report.get_attribute("href").endswith("/report")
    assert "page=experiments" in page.url and "experiments.name=glorot2010" in page.url
    assert page.errors == []
    hosts = {urlsplit(u).hostname for u in page.requests if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}


def test_an_unknown_experiment_in_the_link_falls_back_to_the_first(page, server):
    page.goto(f"{server.url}/#page=experiments&experiments.name=nosuchpaper")
    page.wait_for_selector(".exp-list button[aria-pressed='true']")
    assert page.locator(".exp-list button[aria-pressed='true'] b").text_content() == \
        "glorot2010"
    assert page.errors == []


def test_the_labs_dataset_menu_offers_the_real_data_sets_and_runs_digits(page, server):
    page.goto(f"{server.url}/#depth=3&width=16&steps=30&batch_size=16&dataset=digits"
              "&loss=cross_entropy")
    page.wait_for_function("() => (document.getElementById('plot-flow').data || []).length > 0")
    options = page.locator("#ctl-dataset option").all_text_contents()
    assert {"digits", "mnist1d"} <= set(options), options
    assert page.locator("#ctl-dataset").input_value() == "digits"
    assert page.locator("#ctl-init option").all_text_contents().count("standard") == 1
    # the run is a digits run: 64 inputs into the first layer, 10 classes out
    page.wait_for_function("() => (document.getElementById('plot-flow').data?.[0]?.x?.length"
                           " ?? 0) === 4")
    assert page.errors == []


def test_the_html_report_draws_every_figure_offline(page, server):
    job = httpx.post(f"{server.url}/api/experiments/chen2016/jobs", json={"quick": True}).json()
    for _ in range(600):
        status = httpx.get(f"{server.url}/api/experiments/jobs/{job['id']}").json()
        if status["status"] != "running":
            break
        page.wait_for_timeout(100)
    assert status["status"] == "done", status
    html = httpx.get(f"{server.url}/api/experiments/jobs/{job['id']}/report").text
    page.route("**/*", lambda route: route.abort())  # nothing may be fetched
    page.set_content(html)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length === 1")
    rows = page.locator("table tbody tr")
    assert rows.count() == 3
    assert rows.nth(0).locator("b").text_content() == "PASS"
    assert page.errors == []
