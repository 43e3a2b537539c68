"""The HTML report as a reader gets it: a file opened by double-click (file://) in
Debian's Chromium with the network off, every figure drawn from the record's own
numbers, small enough to mail (plotly.js compressed inside, or one shared copy
beside the reports), and a clear sentence for a record it cannot read."""

import math
import re
import shutil

import pytest

from backproplab.cli import main
from backproplab.engines import run
from backproplab.model.spec import RecordSpec, RunSpec
from backproplab.report import (
    RecordError,
    check_record,
    plotly_js,
    report_figures,
    report_html,
    write_report,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# bounds for the report of a default run (depth 20, width 128, 200 steps): plotly.js
# gzip -9 + base64 is 1.96 MB of the embedded file; the figures' JSON ~0.12 MB
EMBED_BOUND = 2_200_000
DIRECTORY_BOUND = 200_000


@pytest.fixture(scope="module")
def default_record():
    return run(RunSpec())


@pytest.fixture(scope="module")
def small_record():
    return run(RunSpec(depth=4, width=8, steps=5, batch_size=4, activation="relu",
                       init="he_normal", record=RecordSpec(jacobian_every=2)))


# --- sizes ---------------------------------------------------------------------------

def test_the_default_runs_report_is_small_in_every_mode(default_record, tmp_path):
    inline = len(report_html(default_record, "inline").encode())
    embedded = len(report_html(default_record, "embed").encode())
    directory = len(report_html(default_record, "directory").encode())
    js = len(plotly_js().encode())
    assert inline > js  # the old way: plotly.js as it is, 4.8 MB a file
    assert embedded < EMBED_BOUND and embedded < 0.45 * inline
    assert directory < DIRECTORY_BOUND
    # the shared copy is written once beside the reports and is the package's file
    first = write_report(default_record, tmp_path / "a.html", "directory")
    second = write_report(default_record, tmp_path / "b.html", "directory")
    assert [p.name for p in first] == ["a.html", "plotly.min.js"]
    assert [p.name for p in second] == ["b.html"]
    assert (tmp_path / "plotly.min.js").read_text() == plotly_js()


def test_the_report_prints_values_not_python_reprs(small_record):
    page = report_html(small_record)
    visible = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    visible = re.sub(r"<[^>]+>", " ", visible)
    for repr_ in ("None", "False", "True", "{'", "[{", "nan", "inf"):
        assert not re.search(rf"(?<![\w]){re.escape(repr_)}(?![\w])", visible), repr_
    assert "<tr><th>residual</th><td>no</td></tr>" in page  # False, as a reader says it
    assert "<tr><th>clip</th><td>—</td></tr>" in page  # None
    assert "http://" not in page.replace("http://www.w3.org", "")  # nothing to fetch


# --- records it cannot read ------------------------------------------------------------

@pytest.mark.parametrize("record, words", [
    ([1, 2], "not a run record: the file holds a JSON list"),
    ({"steps": [{"step": 0, "layers": []}]}, "no schema field (expected 'backproplab.run/1'"),
    ({"schema": "backproplab.run/0", "steps": []}, "schema 'backproplab.run/0'"),
    ({"schema": "backproplab.run/1", "steps": []}, "the record has no steps"),
    ({"schema": "backproplab.run/1", "steps": [{"step": 0, "layers": [{"index": 0}]}]},
     "step 0, layer 0 lacks delta_norm"),
])
def test_a_record_it_cannot_read_is_said_in_words(record, words, tmp_path, capsys):
    with pytest.raises(RecordError, match=re.escape(words)):
        check_record(record)
    import json

    path = tmp_path / "old.json"
    path.write_text(json.dumps(record))
    assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cannot make a report of {path}: ") and words in err
    assert "Traceback" not in err and not (tmp_path / "r.html").exists()


# --- in Chromium, from a file, offline -----------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def open_offline(browser, path):
    """The file opened as a double-click opens it, with the network switched off and
    every request recorded."""
    context = browser.new_context(offline=True, viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.errors, page.requests = [], []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("request", lambda r: page.requests.append(r.url))
    page.goto(path.as_uri())
    return context, page


def drawn(page):
    page.wait_for_function("() => document.documentElement.dataset.figures === 'drawn'"
                           " || document.querySelector('.report-error')", timeout=20000)
    assert page.locator(".report-error").count() == 0, page.locator(".report-error").inner_text()
    return page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot'), "
                         "el => ({title: el.layout.title.text, data: el.data.map(t => "
                         "({name: t.name, type: t.type, x: t.x, y: t.y, z: t.z}))}))")


def check_figures_are_the_records(shown, record):
    expected = report_figures(record)
    assert [f["title"] for f in shown] == [f.layout.title.text for f in expected]
    last = record["steps"][-1]["layers"]
    flow = shown[0]["data"]
    assert flow[0]["name"] == "‖δ(l)‖"
    assert flow[0]["y"] == [layer["delta_norm"] for layer in last]  # the values, exactly
    assert flow[1]["y"] == [layer["grad_w_norm"] for layer in last]
    heat = shown[1]["data"][0]
    assert heat["type"] == "heatmap"
    assert heat["x"] == [s["step"] for s in record["steps"]]
    assert heat["z"] == [[math.log10(s["layers"][i]["delta_norm"]) for s in record["steps"]]
                         for i in range(len(last))]
    loss = shown[3]["data"][0]
    assert loss["y"] == [s["loss"] for s in record["steps"]]


@pytest.mark.browser
@pytest.mark.parametrize("mode", ["embed", "directory"])
def test_the_report_opens_from_a_file_offline_and_draws_every_figure(
        browser, small_record, tmp_path, mode):
    path = tmp_path / "report.html"
    write_report(small_record, path, mode)
    context, page = open_offline(browser, path)
    try:
        shown = drawn(page)
        assert len(shown) == 5  # flow, heatmap, activations, loss, spectrum
        check_figures_are_the_records(shown, small_record)
        assert all(url.startswith("file://") for url in page.requests), page.requests
        text = page.locator("body").inner_text()
        for repr_ in ("None", "False", "True", "{'"):
            assert repr_ not in text, repr_
        assert page.errors == []
    finally:
        context.close()


@pytest.mark.browser
def test_the_default_runs_report_draws_offline(browser, default_record, tmp_path):
    path = tmp_path / "report.html"
    write_report(default_record, path)
    assert path.stat().st_size < EMBED_BOUND
    context, page = open_offline(browser, path)
    try:
        check_figures_are_the_records(drawn(page), default_record)
        assert page.errors == []
    finally:
        context.close()


@pytest.mark.browser
def test_a_missing_shared_plotly_js_is_said_on_the_page(browser, small_record, tmp_path):
    path = tmp_path / "report.html"
    write_report(small_record, path, "directory")
    (tmp_path / "plotly.min.js").unlink()
    context, page = open_offline(browser, path)
    try:
        page.wait_for_selector(".report-error", timeout=10000)
        assert "plotly.min.js was not found beside this report" in \
            page.locator(".report-error").inner_text()
        assert page.locator("table").count() == 2  # the tables are still there
    finally:
        context.close()


@pytest.mark.browser
def test_the_labs_html_report_button_saves_a_file_that_draws_offline(browser, tmp_path):
    from conftest import make_server

    with make_server(max_sessions=8) as server:
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.goto(f"{server.url}/#depth=5&width=16&steps=6&batch_size=8")
        page.wait_for_function("() => window.backproplab?.state.status === 'done'",
                               timeout=30000)
        with page.expect_download() as info:
            page.locator("#report").click()
        path = tmp_path / "lab-report.html"
        info.value.save_as(path)
        run_id = page.evaluate("() => window.backproplab.state.runId")
        record = server.manager.store.record(run_id)
        context.close()
    assert path.stat().st_size < EMBED_BOUND
    context, page = open_offline(browser, path)
    try:
        shown = drawn(page)
        assert len(shown) == 4  # no Jacobian spectrum recorded
        check_figures_are_the_records(shown, record)
        assert page.errors == []
    finally:
        context.close()


def test_the_flow_figure_shows_clipping_as_the_lab_does():
    """Global-norm clipping: the norms after clipping (× the step's factor) beside the
    measured ones, and the Lab's notes (‖g‖ before clipping, the factor, δ capping)."""
    from backproplab.report import flow_figure

    record = run(RunSpec(depth=4, width=8, steps=3, batch_size=4, clip=1e-3,
                         delta_clip=0.5))
    step = record["steps"][-1]
    factor = step["clip_factor"]
    assert 0 < factor < 1  # a bound this small clips
    fig = flow_figure(record)
    after = next(t for t in fig.data if t.name.startswith("‖∇W(l)‖ after clipping"))
    assert list(after.y) == pytest.approx([layer["grad_w_norm"] * factor
                                           for layer in step["layers"]], rel=1e-12)
    title = fig.layout.title.text
    assert f"global ‖g‖ before clipping {step['grad_norm']:.3g}" in title
    assert f"clip factor {factor:.3g}" in title
    assert "δ(l) capped at ±0.5 per element" in title
    plain = flow_figure(run(RunSpec(depth=4, width=8, steps=2, batch_size=4)))
    assert "(no clipping)" in plain.layout.title.text
    assert not any(t.name.startswith("‖∇W(l)‖ after clipping") for t in plain.data)


def test_the_flow_figure_draws_the_labs_seed_band():
    """A Lab run's report draws what the Lab draws: the spread of a seed ensemble of the
    same network at initialization, through the measured ‖δ(L)‖, in the numbers
    GET /api/theory/spread gives for its config; a watched model's has no band."""
    from fastapi.testclient import TestClient

    from backproplab.api.app import create_app
    from backproplab.report import flow_figure
    from backproplab.settings import Settings

    record = run(RunSpec(depth=6, width=16, steps=2, batch_size=8, activation="relu",
                         init="he_normal"))
    spread = TestClient(create_app(Settings())).get("/api/theory/spread", params={
        "depth": 6, "width": 16, "steps": 2, "batch_size": 8, "activation": "relu",
        "init": "he_normal"}).json()
    fig = flow_figure(record)
    top = next(t for t in fig.data if t.name == "seed spread top")
    bottom = next(t for t in fig.data if t.name == f"spread of {len(spread['seeds'])} seeds "
                                                   "at init (10–90%)")
    assert len(spread["seeds"]) == 32 and bottom.fill == "tonexty"
    anchor = record["steps"][-1]["layers"][5]["delta_norm"]  # the last hidden layer
    for trace, q in ((top, "q90"), (bottom, "q10")):
        assert list(trace.x) == list(range(6))
        assert list(trace.y) == pytest.approx(
            [anchor * math.exp(v) for v in spread["ln_ratio_to_last"][q]], rel=1e-12)
    assert top.y[-1] == pytest.approx(anchor)  # ratio 1 at the anchor, every seed
    watched = {**record, "config": {**record["config"], "source": "watched"}}
    assert not any("seed" in (t.name or "") for t in flow_figure(watched).data)
