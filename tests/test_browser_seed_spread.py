"""The flow plot's seed band in Debian's Chromium: drawn and labelled for tanh (where
no closed-form law exists), its numbers those of GET /api/theory/spread, and beside
the Hanin–Nica band for ReLU."""

import math
import shutil

import httpx
import pytest

from conftest import strict_loads

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BAND = "() => (document.getElementById('plot-flow').data || [])" \
       ".some(t => (t.name || '').startsWith('spread of'))"


SERVER_SETTINGS = {"max_sessions": 16, "frame_rate": 30}  # for conftest's server


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        yield page
        browser.close()


def flow_traces(page):
    return page.evaluate("() => document.getElementById('plot-flow').data.map(t => "
                         "({name: t.name, x: t.x, y: t.y, showlegend: t.showlegend}))")


def served_spread(page, server):
    """What the API answers for the config the page shows (as the page asks for it)."""
    config = page.evaluate("() => window.backproplab.state.config")
    query = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in config.items()
             if k != "record" and v is not None}
    r = httpx.get(f"{server.url}/api/theory/spread", params=query, timeout=30)
    assert r.status_code == 200, r.text
    return strict_loads(r.text)


def test_tanh_flow_plot_draws_the_seed_band_with_the_apis_numbers(page, server):
    page.goto(f"{server.url}/#depth=12&width=64&steps=2&activation=tanh&init=xavier_normal")
    page.wait_for_function("() => window.backproplab?.state.status === 'done'", timeout=30000)
    page.wait_for_function(BAND, timeout=20000)
    traces = flow_traces(page)
    names = [t["name"] for t in traces]
    assert not any(n.startswith("finite-width") for n in names)  # no closed form for tanh
    top = next(t for t in traces if t["name"] == "seed spread top")
    bottom = next(t for t in traces if t["name"].startswith("spread of"))
    assert bottom["name"] == "spread of 32 seeds at init (10–90%)"
    measured = next(t for t in traces if t["name"] == "‖δ(l)‖ measured")
    anchor = measured["y"][11]  # the last hidden layer, where the mean-field line starts
    spread = served_spread(page, server)
    assert top["x"] == bottom["x"] == spread["layers"] == list(range(12))
    ratio = spread["ln_ratio_to_last"]
    assert top["y"] == pytest.approx([anchor * math.exp(v) for v in ratio["q90"]], rel=1e-12)
    assert bottom["y"] == pytest.approx([anchor * math.exp(v) for v in ratio["q10"]],
                                        rel=1e-12)
    assert top["y"][0] > bottom["y"][0] and top["y"][-1] == pytest.approx(anchor)
    # the legend says what it is, in words a reader sees
    legend = page.locator("#plot-flow .legendtext").all_text_contents()
    assert "spread of 32 seeds at init (10–90%)" in legend
    assert "seed spread top" not in legend
    # the measured profile at init lies inside its own ensemble's band (it is one of them)
    inside = sum(lo <= v <= hi for lo, v, hi in zip(bottom["y"], measured["y"][:12], top["y"],
                                                    strict=True))
    assert inside >= 8
    assert page.errors == []


def test_relu_flow_plot_draws_both_bands_apart(page, server):
    page.goto(f"{server.url}/#depth=10&width=32&steps=2&activation=relu&init=he_normal")
    page.wait_for_function(BAND, timeout=30000)
    page.wait_for_function("() => (document.getElementById('plot-flow').data || [])"
                           ".some(t => (t.name || '').startsWith('finite-width'))",
                           timeout=20000)
    legend = page.locator("#plot-flow .legendtext").all_text_contents()
    assert "spread of 32 seeds at init (10–90%)" in legend
    assert "finite-width law, one input (±1 sd, Hanin & Nica)" in legend
    assert page.errors == []


def test_a_refused_ensemble_is_said_on_the_plot(page, server):
    # width 1024 at depth 100: the run is allowed, the 32-network ensemble is not
    page.goto(f"{server.url}/#depth=100&width=1024&steps=1&batch_size=64&activation=tanh")
    page.wait_for_function("() => (document.getElementById('plot-flow').layout?.annotations"
                           " || []).some(a => a.text.includes('seed spread not shown'))",
                           timeout=60000)
    text = page.evaluate("() => document.getElementById('plot-flow').layout.annotations"
                         ".map(a => a.text).join(' ')")
    assert "the seed ensemble is too large for this network" in text
    assert page.errors == []
