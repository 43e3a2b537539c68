"""The Runs page in Debian's Chromium: the history, rename, delete, open, and two runs
compared (drawn values against the stored ones, differing config fields shown)."""

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import strict_loads

pytestmark = pytest.mark.browser
XAVIER = {"depth": 8, "width": 16, "steps": 6, "batch_size": 8, "activation": "relu",
          "init": "xavier_normal"}
HE = {**XAVIER, "init": "he_normal", "lr": 0.02}


SERVER_SETTINGS = {"max_sessions": 4, "frame_rate": 30}  # for conftest's server


PAGE_OPTIONS = {"accept_downloads": True}  # for conftest's page


def headless_run(server, config):
    store = server.manager.store
    job = server.manager.start_headless(validate(config).to_spec(), validate(config).model_dump())
    job.join(30)
    assert store.get(job.id)["status"] == "done"
    return job.id


def validate(config):
    from backproplab.api.schemas import validate_config

    return validate_config(config)


@pytest.fixture
def two_runs(server):
    store = server.manager.store
    for run in store.list(limit=500):
        store.delete(run["id"])
    xavier, he = headless_run(server, XAVIER), headless_run(server, HE)
    store.rename(xavier, name="Xavier")
    return xavier, he


def exported(server, run_id):
    return strict_loads(b"".join(server.manager.store.export_chunks(run_id)).decode())


def test_history_lists_the_stored_runs_with_their_figures(page, server, two_runs):
    xavier, he = two_runs
    page.goto(f"{server.url}/#page=runs")
    page.wait_for_selector(f"tr[data-run='{xavier}']")
    rows = page.locator("#runs-rows tr")
    assert rows.count() == 2
    assert rows.nth(0).get_attribute("data-run") == he  # newest first
    assert page.locator("#runs-count").text_content() == "runs 1–2 of 2"
    for run_id in two_runs:
        row = page.locator(f"tr[data-run='{run_id}']")
        cells = row.locator("td")
        stored = server.manager.store.get(run_id)
        assert cells.nth(2).text_content() == "headless"
        assert cells.nth(3).text_content() == "done"
        assert cells.nth(5).text_content() == "6"
        c = stored["config"]  # the network, with what tells otherwise equal runs apart
        assert cells.nth(6).text_content() == (
            f"8×16 relu, {c['init']} σ_w {c['sigma_w']:g}"
            + (f" σ_b {c['sigma_b']:g}" if c["sigma_b"] else "")
            + (f", {c['loss']}" if c["loss"] != "mse" else "")
            + f", {c['engine']} {c['dtype']}, lr {c['lr']:g}")
        shown = float(cells.nth(7).text_content())
        assert shown == pytest.approx(stored["summary"]["final_loss"], rel=1e-3)
        assert cells.nth(4).text_content()[:4] == time.strftime(
            "%Y", time.localtime(stored["created"]))
    assert page.locator(f"tr[data-run='{xavier}'] .run-name").input_value() == "Xavier"
    for kind, path in (("export", "export"), ("report", "report")):
        link = page.locator(f"tr[data-run='{he}'] .run-{kind}")
        assert link.get_attribute("href") == f"/api/runs/{he}/{path}"
    with page.expect_download() as info:
        page.locator(f"tr[data-run='{he}'] .run-export").click()
    saved = info.value.path().read_bytes()
    assert saved == b"".join(server.manager.store.export_chunks(he))
    assert page.errors == []


def test_the_runs_table_scrolls_in_its_box_on_a_narrow_screen(page, server, two_runs):
    page.set_viewport_size({"width": 700, "height": 900})
    page.goto(f"{server.url}/#page=runs")
    page.wait_for_selector(f"tr[data-run='{two_runs[0]}']")
    sizes = page.evaluate("""() => { const t = document.querySelector('.runs-table');
        const d = document.documentElement;
        return {page: d.scrollWidth, view: d.clientWidth, right: t.getBoundingClientRect().right,
                inner: t.scrollWidth, box: t.clientWidth}; }""")
    assert sizes["page"] <= sizes["view"], sizes  # the page does not scroll sideways
    assert sizes["right"] <= sizes["view"] and sizes["inner"] > sizes["box"], sizes
    assert page.errors == []


def test_rename_and_delete_reach_the_store(page, server, two_runs):
    xavier, he = two_runs
    page.goto(f"{server.url}/#page=runs")
    name = page.locator(f"tr[data-run='{he}'] .run-name")
    name.fill("He, lr 0.02")
    name.press("Enter")
    page.wait_for_function("() => document.getElementById('conn').textContent.includes('renamed')")
    assert server.manager.store.get(he)["name"] == "He, lr 0.02"
    page.reload()
    page.wait_for_selector(f"tr[data-run='{he}']")
    assert page.locator(f"tr[data-run='{he}'] .run-name").input_value() == "He, lr 0.02"
    delete = page.locator(f"tr[data-run='{xavier}'] .run-delete")
    delete.click()
    assert delete.text_content() == "Confirm delete"  # one click alone deletes nothing
    assert server.manager.store.get(xavier)["name"] == "Xavier"
    delete.click()
    page.wait_for_selector(f"tr[data-run='{xavier}']", state="detached")
    assert [r["id"] for r in server.manager.store.list()] == [he]
    assert page.locator("#runs-count").text_content() == "runs 1–1 of 1"
    assert page.errors == []


def test_two_runs_compared_overlaid_with_the_differing_fields(page, server, two_runs):
    xavier, he = two_runs
    page.goto(f"{server.url}/#page=runs")
    page.wait_for_selector(f"tr[data-run='{he}']")
    assert page.locator("#runs-compare").is_disabled()
    for run_id in (xavier, he):
        page.locator(f"tr[data-run='{run_id}'] input[type=checkbox]").check()
    page.locator("#runs-compare").click()
    page.wait_for_function(
        "() => (document.getElementById('compare-flow-plot')?.data || []).length === 2")
    # the comparison is drawn below the list: brought into view, its title focused
    top = page.evaluate("() => document.getElementById('runs-compare-view')"
                        ".getBoundingClientRect().top")
    assert 52 <= top < 120, top  # just below the sticky top bar
    assert page.evaluate("() => document.activeElement.id") == "compare-title"
    query = parse_qs(urlsplit(page.url).fragment)
    assert query["page"] == ["runs"] and query["runs.compare"] == [f"{xavier},{he}"]

    # the differing fields, with each run's value, and only those
    rows = page.locator("#compare-config tr.differs")
    shown = {rows.nth(i).get_attribute("data-field"):
             [c.text_content() for c in rows.nth(i).locator("td").all()]
             for i in range(rows.count())}
    assert shown == {"init": ["xavier_normal", "he_normal"], "lr": ["0.01", "0.02"]}
    assert "≠" in rows.nth(0).locator("th").text_content()
    assert page.locator("#compare-title").text_content().endswith("2 config fields differ")

    # the numbers drawn are the numbers stored: ‖δ(l)‖ at the last step, and the loss
    traces = page.evaluate("""() => ['compare-flow-plot', 'compare-loss-plot'].map(id =>
        document.getElementById(id).data.map(t => ({name: t.name, x: t.x, y: t.y})))""")
    flow, loss = traces
    for i, run_id in enumerate((xavier, he)):
        record = exported(server, run_id)
        last = record["steps"][-1]
        assert flow[i]["y"] == [layer["delta_norm"] for layer in last["layers"]]
        assert flow[i]["x"] == list(range(9))
        assert loss[i]["y"] == [s["loss"] for s in record["steps"]]
        assert loss[i]["x"] == [s["step"] for s in record["steps"]]
    assert flow[0]["name"].startswith("Xavier") and flow[1]["name"].startswith(he)
    assert flow[0]["y"] != flow[1]["y"]  # two different runs, two different profiles
    heatmaps = page.evaluate("""() => [...document.querySelectorAll('#compare-heatmaps .plot')]
        .map(el => el.data[0].z.length)""")
    assert heatmaps == [9, 9]
    assert page.errors == []


def test_a_compare_link_opens_the_comparison_side_by_side_and_opens_a_run(page, server,
                                                                          two_runs):
    xavier, he = two_runs
    page.goto(f"{server.url}/#page=runs&runs.compare={xavier},{he}")
    page.wait_for_function(
        "() => (document.getElementById('compare-flow-plot')?.data || []).length === 2")
    page.locator("button[data-mode='side by side']").click()
    per_run = page.evaluate("""() => [...document.querySelectorAll('#compare-flow .plot')]
        .map(el => ({run: el.dataset.run, y: el.data[0].y}))""")
    assert [p["run"] for p in per_run] == [xavier, he]
    for p in per_run:  # the Lab's own flow view, fed from the store
        last = exported(server, p["run"])["steps"][-1]
        assert p["y"] == [layer["delta_norm"] for layer in last["layers"]]
    assert page.locator(f"tr[data-run='{xavier}'] input[type=checkbox]").is_checked()

    page.locator(f"tr[data-run='{he}'] .run-open").click()
    page.wait_for_function("() => document.body.dataset.page === 'lab' && "
                           "window.backproplab.state.steps.length === 6")
    state = page.evaluate("() => ({source: window.backproplab.state.source, "
                          "init: window.backproplab.state.config.init, "
                          "loss: window.backproplab.state.steps.map(s => s.loss)})")
    record = exported(server, he)
    assert state == {"source": "import", "init": "he_normal",
                     "loss": [s["loss"] for s in record["steps"]]}
    # said as what it is: a run from the store, not an import
    assert page.locator("#progress").text_content() == "stored headless run"
    assert page.locator("#conn").text_content() == "stored headless run: 6 steps"
    assert page.errors == []


def test_an_unknown_run_in_a_compare_link_is_named(page, server, two_runs):
    xavier, _ = two_runs
    page.goto(f"{server.url}/#page=runs&runs.compare={xavier},nope")
    page.wait_for_function("() => document.getElementById('compare-title')?"
                           ".textContent.startsWith('Could not compare')")
    assert "no stored run 'nope'" in page.locator("#compare-title").text_content()


def test_pages_of_the_history_and_the_name_filter(page, server):
    store = server.manager.store
    for run in store.list(limit=500):
        store.delete(run["id"])
    ids = [store.create({**XAVIER, "seed": i}, "imported", name=f"seed {i}") for i in range(30)]
    for run_id in ids:
        store.finish(run_id, "done")
    page.goto(f"{server.url}/#page=runs")
    page.wait_for_selector(f"tr[data-run='{ids[-1]}']")
    first = page.locator("#runs-rows tr").evaluate_all("rows => rows.map(r => r.dataset.run)")
    assert first == ids[::-1][:25]
    assert page.locator("#runs-newer").is_disabled()
    page.locator("#runs-older").click()
    page.wait_for_selector(f"tr[data-run='{ids[0]}']")
    second = page.locator("#runs-rows tr").evaluate_all("rows => rows.map(r => r.dataset.run)")
    assert second == ids[::-1][25:]
    assert page.locator("#runs-count").text_content() == "runs 26–30 of 30"
    assert page.locator("#runs-older").is_disabled()
    page.locator("#runs-newer").click()
    page.wait_for_selector(f"tr[data-run='{ids[-1]}']")
    page.locator("#runs-name").fill("seed 2")
    page.wait_for_function("() => document.querySelectorAll('#runs-rows tr').length === 11")
    shown = page.locator("#runs-rows .run-name").evaluate_all("els => els.map(e => e.value)")
    assert shown == ["seed 29", "seed 28", "seed 27", "seed 26", "seed 25", "seed 24",
                     "seed 23", "seed 22", "seed 21", "seed 20", "seed 2"]
    assert parse_qs(urlsplit(page.url).fragment)["runs.name"] == ["seed 2"]
    assert page.errors == []


def test_the_compare_report_downloads_with_both_runs(page, server, two_runs, tmp_path):
    xavier, he = two_runs
    page.goto(f"{server.url}/#page=runs&runs.compare={xavier},{he}")
    page.wait_for_function(
        "() => (document.getElementById('compare-flow-plot')?.data || []).length === 2")
    with page.expect_download() as info:
        page.locator("#compare-report").click()
    path = tmp_path / "compare.html"
    info.value.save_as(path)
    text = path.read_text()
    assert "2 runs compared" in text and "Xavier" in text and he in text
    assert "init (differs)" in text and "lr (differs)" in text
    assert 'src="http' not in text


def test_an_overflowing_run_compared_shows_gaps_and_markers(page, server, two_runs):
    xavier, _ = two_runs
    exploding = headless_run(server, {"activation": "tanh", "depth": 300, "width": 32,
                                      "init": "normal", "sigma_w": 20.0, "steps": 3,
                                      "batch_size": 8})
    last = exported(server, exploding)["steps"][-1]
    bad = [layer["index"] for layer in last["layers"]
           if layer["delta_norm"] in ("NaN", "Infinity", "-Infinity")]
    assert bad  # the run did overflow
    page.goto(f"{server.url}/#page=runs&runs.compare={xavier},{exploding}")
    page.wait_for_function(
        "() => (document.getElementById('compare-flow-plot')?.data || []).length === 3")
    traces = page.evaluate("""() => document.getElementById('compare-flow-plot').data
        .map(t => ({name: t.name, x: t.x, y: t.y, mode: t.mode}))""")
    line, markers = traces[1], traces[2]
    assert [line["x"][i] for i, y in enumerate(line["y"]) if y is None] == bad  # gaps
    assert markers["name"].endswith("NaN/∞") and markers["x"] == bad
    row = page.locator(f"tr[data-run='{exploding}'] td.overflowed")
    summary = server.manager.store.get(exploding)["summary"]["first_nonfinite"]
    assert row.text_content() == f"step {summary['step']}, layer {summary['layer']}"
