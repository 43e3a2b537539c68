"""The Watch page in Debian's Chromium: a run pushed from another process with
backproplab.watch(model, server=...) appears in the list, and the page shows its
module names and the ‖δ‖ values that were pushed; a long model is grouped by parent
module; the first non-finite value is named in words."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from urllib.parse import urlsplit

import pytest

from conftest import make_server, open_page

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


@pytest.fixture
def page(browser, server):
    with open_page(browser) as page:
        yield page


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
    assert "page=watch" in page.url
    rows = shown_table(page)
    assert [r[0] for r in rows] == [layer["name"] for layer in pushed["layers"]]
    for row_, layer in zip(rows, pushed["layers"], strict=True):
        assert float(row_[2]) == pytest.approx(layer["delta_norm"], rel=5e-3)
    assert page.errors == []
