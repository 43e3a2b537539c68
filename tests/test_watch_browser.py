"""The Watch page in Debian's Chromium: a run pushed from another process with
backproplab.watch(model, server=...) appears in the list, and the page shows its
module names and the ‖δ‖ values that were pushed; a long model is grouped by parent
module; the first non-finite value is named in words."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from urllib.parse import urlsplit

import pytest

from conftest import make_server

pytest.importorskip("torch")
pytestmark = pytest.mark.browser

PUSH = textwrap.dedent("""
    import json, sys, torch, backproplab
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.act = nn.Linear(16, 16), nn.ReLU(inplace=True)
        def forward(self, x):
            return x + self.act(self.fc(x))

    torch.manual_seed(0)
    m = nn.Sequential()
    m.add_module("stem", nn.Linear(8, 16))
    m.add_module("blocks", nn.Sequential(*[Block() for _ in range(3)]))
    m.add_module("head", nn.Linear(16, 4))
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    records = []
    with backproplab.watch(m, server=sys.argv[1], name="three blocks") as w:
        for step in range(4):
            loss = nn.functional.cross_entropy(m(torch.randn(32, 8)), torch.randint(0, 4, (32,)))
            if step == 3 and sys.argv[2] == "broken":
                loss = loss * float("inf")
            loss.backward(); opt.step(); records.append(w.step(loss)); opt.zero_grad()
    from backproplab.runs.codec import encode_str
    print(encode_str(records[-1]))
""")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BACKPROPLAB_WATCH_SECRET_FILE",
                  str(tmp_path_factory.mktemp("cfg") / "watch-secret"))
        with make_server() as s:
            yield s


def push(server, mode="ok"):
    proc = subprocess.run([sys.executable, "-c", PUSH, server.url, mode], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def shown_table(page):
    return page.evaluate("""() => [...document.querySelectorAll('#watch-values tbody tr')]
        .map(tr => [...tr.children].map(td => td.textContent))""")


def test_a_pushed_run_shows_its_module_names_and_delta_norms(page, server):
    pushed = push(server)
    page.goto(f"{server.url}/#page=watch")
    page.locator("#watch-runs tbody tr", has_text="three blocks").first.click()
    page.wait_for_function("() => document.querySelectorAll('#watch-values tbody tr')"
                           ".length > 0 && document.getElementById('watch-step')"
                           ".textContent === '3'", timeout=15000)
    rows = shown_table(page)
    names = [layer["name"] for layer in pushed["layers"]]
    assert [r[0] for r in rows] == names
    assert names[:4] == ["stem", "blocks.0.fc", "blocks.0.act", "blocks.1.fc"]
    for row, layer in zip(rows, pushed["layers"], strict=True):
        assert row[1] == layer["kind"]
        assert float(row[2]) == pytest.approx(layer["delta_norm"], rel=5e-3)  # 3 digits
        assert row[3] == ("—" if layer["grad_w_norm"] is None else row[3])
    flow = page.evaluate("() => { const gd = document.getElementById('watch-flow');"
                         " return {ticks: gd.layout.xaxis.ticktext, y: gd.data[0].y,"
                         " title: gd.layout.xaxis.title.text}; }")
    assert flow["ticks"] == names and flow["title"] == "module (forward order)"
    assert flow["y"] == [layer["delta_norm"] for layer in pushed["layers"]]
    heat = page.evaluate("() => document.getElementById('watch-heatmap').layout.yaxis.ticktext")
    assert heat == names
    # a long model stays readable: one parent module at a time
    page.select_option("#watch-group", "blocks.1")
    page.wait_for_function("() => document.querySelectorAll('#watch-values tbody tr')"
                           ".length === 2")
    assert [r[0] for r in shown_table(page)] == ["blocks.1.fc", "blocks.1.act"]
    assert "watch.group=blocks.1" in page.url
    assert page.locator("#watch-badge").is_hidden()
    assert page.errors == []
    assert {urlsplit(u).hostname for u in page.requests} == {"127.0.0.1"}


def test_the_first_non_finite_value_is_named(page, server):
    push(server, "broken")
    page.goto(f"{server.url}/#page=watch")
    page.locator("#watch-runs tbody tr").first.click()
    badge = page.locator("#watch-badge")
    badge.wait_for(state="visible", timeout=15000)
    assert badge.text_content() == "first non-finite: step 3, module head (backward, delta)"
    assert page.locator("#watch-runs tbody tr").first.locator("td").nth(3).text_content() \
        == "step 3, module head (backward, delta)"
    assert page.errors == []


def test_a_watched_file_imported_in_the_lab_opens_in_the_watch_page(page, server, tmp_path):
    import torch

    import backproplab

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))
    path = tmp_path / "mine.jsonl"
    with backproplab.watch(m, out=path, name="from a file") as w:
        for _ in range(3):
            m(torch.randn(4, 3)).pow(2).mean().backward()
            last = w.step()
            m.zero_grad()
    page.goto(f"{server.url}/#depth=2&width=4&steps=5")
    page.wait_for_function("() => window.backproplab?.state.schema")
    page.set_input_files("#import-file", str(path))
    page.wait_for_function("() => document.getElementById('watch-title')?.textContent"
                           " === 'from a file'", timeout=15000)
    assert "page=watch" in page.url
    rows = shown_table(page)
    assert [r[0] for r in rows] == ["0", "1", "2"]
    assert float(rows[1][2]) == pytest.approx(last["layers"][1]["delta_norm"], rel=5e-3)
    assert page.errors == []


def test_the_runs_page_lists_and_opens_a_pushed_run(page, server):
    import httpx

    pushed = push(server)
    run = httpx.get(f"{server.url}/api/watch/runs").json()["runs"][0]
    assert run["name"] == "three blocks" and run["status"] == "finished"
    page.goto(f"{server.url}/#page=runs")
    row = page.locator(f"tr[data-run='{run['id']}']")
    row.wait_for(timeout=15000)
    cells = row.locator("td")
    assert cells.nth(2).text_content() == "watched"
    assert cells.nth(3).text_content() == "done"
    assert cells.nth(5).text_content() == "4"
    assert cells.nth(6).text_content() == f"Sequential: {run['modules']} modules, " \
                                          f"{run['parameters']} parameters"
    row.locator(".run-open").click()
    page.wait_for_function("() => document.getElementById('watch-title')?.textContent"
                           " === 'three blocks' && document.getElementById('watch-step')"
                           "?.textContent === '3'", timeout=15000)
    assert "page=watch" in page.url and f"run={run['id']}" in page.url  # followed by id
    # the status line says where it went (not a "loading …" that never ends)
    assert page.locator("#conn").text_content() == "opened three blocks on the Watch page"
    rows = shown_table(page)
    assert [r[0] for r in rows] == [layer["name"] for layer in pushed["layers"]]
    for row_, layer in zip(rows, pushed["layers"], strict=True):
        assert float(row_[2]) == pytest.approx(layer["delta_norm"], rel=5e-3)
    assert page.errors == []


def nonfinite_label(v):
    """What the page writes for a non-finite value (codec strings or floats)."""
    x = float(v) if not isinstance(v, str) else {"NaN": math.nan, "Infinity": math.inf,
                                                 "-Infinity": -math.inf}[v]
    if math.isfinite(x):
        return None
    return "NaN" if math.isnan(x) else ("+Inf" if x > 0 else "−Inf")


def follow_newest(page, server, step="3"):
    page.goto(f"{server.url}/#page=watch")
    page.locator("#watch-runs tbody tr").first.click()
    page.wait_for_function(f"() => document.getElementById('watch-step').textContent"
                           f" === '{step}'", timeout=15000)
    page.wait_for_timeout(400)  # the heatmap draws at most every 250 ms


def test_with_no_run_the_plots_say_what_to_do_not_loading(page, tmp_path):
    with make_server(data_dir=str(tmp_path)) as empty:
        page.goto(f"{empty.url}/#page=watch")
        page.locator("#watch-empty").wait_for()
        page.wait_for_function("() => document.querySelector('.watch-views.idle')")
        said = page.evaluate("() => ['watch-flow', 'watch-heatmap', 'watch-loss'].map(id => "
                             "getComputedStyle(document.getElementById(id), '::before')"
                             ".content)")
        assert all("no run followed yet" in text and "open a run file" in text
                   for text in said), said
        assert page.errors == []


def test_the_code_sample_is_whole_in_the_sidebar(page, server):
    page.goto(f"{server.url}/#page=watch")
    snippet = page.locator(".watch-snippet")
    snippet.wait_for()
    text = snippet.text_content()
    assert f'backproplab.watch(model, server="{server.url}") as w:' in text
    box = page.evaluate("""() => { const pre = document.querySelector('.watch-snippet');
        const side = document.querySelector('.watch-side').getBoundingClientRect();
        const r = pre.getBoundingClientRect();
        return {scroll: pre.scrollWidth, client: pre.clientWidth, right: r.right,
                sideRight: side.right}; }""")
    # nothing hidden to the right: no text beyond the box, the box inside the sidebar
    assert box["scroll"] <= box["client"], box
    assert box["right"] <= box["sideRight"], box
    assert page.errors == []


def test_step_and_log_ticks_read_as_values(page, server):
    pushed = push(server)
    follow_newest(page, server)
    labels = page.evaluate("""() => ({
        flow: [...document.querySelectorAll('#watch-flow .ytick text')].map(t => t.textContent),
        loss: [...document.querySelectorAll('#watch-loss .xtick text')].map(t => t.textContent),
        heat: [...document.querySelectorAll('#watch-heatmap .xtick text')]
            .map(t => t.textContent)})""")
    norms = [float(layer[k]) for layer in pushed["layers"] for k in ("delta_norm", "grad_w_norm")
             if layer[k] is not None]
    values = [float(t.replace("−", "-")) for t in labels["flow"]]
    assert 2 <= len(values) <= 12, labels["flow"]
    # each label is the full value at its tick (Plotly's minor labels read "2" for 0.2)
    assert all(min(norms) / 1.5 <= v <= max(norms) * 1.5 for v in values), (values, norms)
    assert len(set(values)) == len(values)
    # four steps: whole step numbers only
    assert labels["loss"] == ["0", "1", "2", "3"], labels["loss"]
    assert labels["heat"] == ["0", "1", "2", "3"], labels["heat"]
    assert page.errors == []


def test_non_finite_values_are_marked_and_named(page, server):
    pushed = push(server, "broken")
    follow_newest(page, server)
    expected = [(layer["name"], nonfinite_label(layer["delta_norm"]))
                for layer in pushed["layers"]]
    bad_delta = [(n, w) for n, w in expected if w]
    assert bad_delta, "the broken run's last step has a non-finite δ"
    shown = page.evaluate("""() => {
        const gd = document.getElementById('watch-flow');
        const hm = document.getElementById('watch-heatmap');
        const texts = (el) => [...el.querySelectorAll('.textpoint text')].map(t => t.textContent);
        return {legend: [...gd.querySelectorAll('.legendtext')].map(t => t.textContent),
                flowText: texts(gd), flowHover: gd.data[2].customdata,
                heatText: texts(hm),
                heatLegend: [...hm.querySelectorAll('.legendtext')].map(t => t.textContent),
                zerolines: hm.querySelectorAll('.zerolinelayer path').length,
                cellColor: hm.data[1].colorscale[0][1]}; }""")
    assert "non-finite (NaN / ±Inf), at the top edge" in shown["legend"]
    # one marker per module with a non-finite ‖δ‖ or ‖∇W‖, labelled with what it is
    per_module = {}
    for layer in pushed["layers"]:
        for key, sym in (("delta_norm", "‖δ‖"), ("grad_w_norm", "‖∇W‖")):
            w = layer[key] is not None and nonfinite_label(layer[key])
            if w:
                per_module.setdefault(layer["name"], []).append(f"{sym} {w}")
    assert shown["flowHover"] == [f"{n}: {', '.join(v)}" for n, v in per_module.items()]
    assert sorted(shown["flowText"]) == sorted(
        "/".join(dict.fromkeys(v.split(" ")[1] for v in vals)) for vals in per_module.values())
    # the heatmap names each non-finite cell (only the last step has any)
    assert sorted(shown["heatText"]) == sorted(w for _, w in bad_delta)
    assert shown["heatLegend"] == ["non-finite ‖δ‖ (NaN / ±Inf)"]
    assert shown["cellColor"] == "#D55E00" and shown["zerolines"] == 0
    assert page.errors == []


LIVE = textwrap.dedent("""
    import sys, torch, backproplab
    from torch import nn
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with backproplab.watch(m, server=sys.argv[1], name=sys.argv[2]) as w:
        for step in range(2):
            m(torch.randn(16, 4)).pow(2).mean().backward(); w.step(); m.zero_grad()
            print("stepped", flush=True)
            sys.stdin.readline()  # stays live until the test says go on
""")


def test_a_live_run_is_listed_from_its_first_step(page, server):
    import time

    import httpx

    push(server)  # an older, finished run is followed first
    page.goto(f"{server.url}/#page=watch")
    page.locator("#watch-runs tbody tr").first.wait_for(timeout=15000)
    proc = subprocess.Popen([sys.executable, "-c", LIVE, server.url, "live one"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "stepped"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the step has reached the server
            runs = httpx.get(f"{server.url}/api/watch/runs").json()["runs"]
            if runs and runs[0]["name"] == "live one" and runs[0]["steps"] == 1:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the first step never reached the server")
        stored = time.monotonic()
        row = page.locator("#watch-runs tbody tr", has_text="live one")
        row.wait_for(timeout=5000)
        listed = time.monotonic() - stored
        assert [row.locator("td").nth(i).text_content() for i in range(3)] == \
            ["live one", "live", "1"]
        assert listed < 2.5, f"listed {listed:.1f} s after its first step was stored"
        # the page follows the new live run (the one it showed had finished)
        page.wait_for_function("() => document.getElementById('watch-title').textContent"
                               " === 'live one' && document.getElementById('watch-step')"
                               ".textContent === '0'", timeout=5000)
        proc.stdin.write("\n")
        proc.stdin.flush()
        page.wait_for_function("() => document.getElementById('watch-step').textContent"
                               " === '1'", timeout=10000)
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0
        row.locator("td.status-finished").wait_for(timeout=5000)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert page.errors == []
