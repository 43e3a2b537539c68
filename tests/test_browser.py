"""The page in Debian's Chromium, driven by Playwright (never `playwright install`)."""

import json
from urllib.parse import urlsplit

import pytest

from conftest import make_server

pytestmark = pytest.mark.browser
SMALL = "depth=6&width=16&steps=20&batch_size=8"
OUTPUT_OF = "el => el.parentElement.querySelector('input.exact').value"
PLOT_DATA = ("() => ['plot-flow', 'plot-loss', 'plot-heatmap'].map(id => JSON.stringify("
             "document.getElementById(id).data.map(t => [t.x, t.y, t.z])))")


SERVER_SETTINGS = {"frame_rate": 30}  # for conftest's server


PAGE_OPTIONS = {"accept_downloads": True}  # for conftest's page


def flow_points(page):
    return page.evaluate("() => document.getElementById('plot-flow').data?.[0]?.x?.length ?? 0")


def test_loads_without_errors_or_outside_requests(page, server):
    page.goto(f"{server.url}/#{SMALL}")
    page.wait_for_function("() => (document.getElementById('plot-flow').data || []).length > 0")
    page.wait_for_timeout(500)
    assert page.errors == []
    hosts = {urlsplit(u).hostname for u in page.requests if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}
    assert page.locator("#ctl-activation").input_value() == "tanh"


def test_depth_slider_updates_the_flow_plot_within_a_second(page, server):
    page.goto(f"{server.url}/#{SMALL}&steps=100000")
    page.wait_for_function("() => (document.getElementById('plot-flow').data || []).length > 0")
    assert flow_points(page) == 7
    slider = page.locator("#ctl-depth")
    slider.focus()
    page.keyboard.press("ArrowRight")  # keyboard-operable
    page.wait_for_function("() => document.getElementById('ctl-depth').value !== '0'")
    # drag: the slider moves to a new position in one input event, timed from here
    start = page.evaluate("""() => {
        const el = document.getElementById('ctl-depth');
        el.value = String(Number(el.value) + 3);  // three round numbers deeper
        el.dispatchEvent(new Event('input', {bubbles: true}));
        return performance.now();
    }""")
    page.wait_for_function(
        "() => (document.getElementById('plot-flow').data?.[0]?.x?.length ?? 0) > 7",
        timeout=3000)
    elapsed = page.evaluate(f"() => performance.now() - {start}")
    assert elapsed < 1000
    depth = int(page.locator("#ctl-depth").evaluate(OUTPUT_OF))
    page.wait_for_function(
        f"() => document.getElementById('plot-flow').data[0].x.length === {depth + 1}")


def test_exploding_preset_shows_the_overflow_badge_and_stays_responsive(page, server):
    page.goto(f"{server.url}/#{SMALL}")
    page.wait_for_function("() => (document.getElementById('plot-flow').data || []).length > 0")
    label = page.locator("#preset option", has_text="exploding").first.text_content()
    page.select_option("#preset", label=label)
    badge = page.locator("#badge")
    badge.wait_for(state="visible", timeout=15000)  # depth 300: the first step takes a while
    assert "gradients overflowed at step" in badge.text_content()
    # where it started, on the way back from the output: finite above, not at or below
    flagged = page.evaluate("() => window.backproplab.state.steps.find(s => s.overflow)")
    layer = flagged["overflow"]["layer"]
    assert f"first at layer {layer} on the backward pass's way from the output" \
        in badge.text_content()
    finite = page.evaluate("(s) => s.layers.map(v => Number.isFinite(v.delta_norm) && "
                           "Number.isFinite(v.grad_w_norm))", flagged)
    assert not finite[layer] and all(finite[layer + 1:]) and layer > 0, (layer, finite)
    # still responsive: a click is handled and a script round trip is quick
    start = page.evaluate("() => performance.now()")
    page.click("#stepper-next")
    assert page.evaluate(f"() => performance.now() - {start}") < 500
    # gaps, not fake values: the measured trace holds nulls where values are not finite
    nulls = page.evaluate("() => document.getElementById('plot-flow').data[0].y"
                          ".filter(v => v === null).length")
    assert nulls > 0
    assert page.errors == []


def test_export_then_import_reproduces_the_plots(page, server, tmp_path):
    page.goto(f"{server.url}/#{SMALL}&record.jacobian_every=5")
    page.wait_for_function("() => window.backproplab?.state.status === 'done'", timeout=10000)
    page.wait_for_timeout(1000)  # the heatmap redraws at most every 250 ms
    before = page.evaluate(PLOT_DATA)
    with page.expect_download() as info:
        page.click("#export")
    path = tmp_path / "run.json"
    info.value.save_as(path)
    record = json.loads(path.read_text())
    assert record["schema"] == "backproplab.run/1" and len(record["steps"]) == 20
    page.goto(f"{server.url}/#depth=3&width=8&steps=5")
    page.wait_for_function("() => window.backproplab?.state.status === 'done'", timeout=10000)
    page.set_input_files("#import-file", str(path))
    page.wait_for_function("() => window.backproplab.state.source === 'import'")
    page.wait_for_timeout(1000)
    after = page.evaluate(PLOT_DATA)
    assert after == before
    assert page.locator("#ctl-depth").evaluate(OUTPUT_OF) == "6"


def test_copied_url_restores_the_same_controls(page, server, browser):
    page.goto(f"{server.url}/#{SMALL}")
    page.wait_for_function("() => window.backproplab?.state.schema")
    page.select_option("#ctl-activation", "relu")
    page.select_option("#ctl-init", "he_normal")
    page.check("#ctl-residual")
    page.wait_for_timeout(200)
    url = page.url
    other = browser.new_page()
    other.goto(url)
    other.wait_for_function("() => window.backproplab?.state.schema")
    for sel in ("#ctl-activation", "#ctl-init"):
        assert other.locator(sel).input_value() == page.locator(sel).input_value()
    assert other.locator("#ctl-residual").is_checked()
    assert other.evaluate("() => window.backproplab.state.config.depth") == 6
    other.close()


def test_stepper_walks_every_node_with_the_servers_delta(page, server):
    import httpx

    page.goto(f"{server.url}/#depth=3&width=3&activation=tanh&steps=5")
    page.wait_for_function("() => document.querySelectorAll('#stepper-graph .node').length > 0")
    walk = httpx.post(f"{server.url}/api/tape/inspect",
                      json={"depth": 3, "width": 3, "activation": "tanh", "init": "xavier_normal",
                            "sigma_w": 1.0, "sigma_b": 0.0, "seed": 0, "loss": "mse"}).json()
    by_act = {r["activation_node"]: r for r in walk["recurrences"]}
    seen = 0
    for step in walk["steps"]:
        page.click("#stepper-next")
        current = page.locator("#stepper-graph .node.current")
        assert current.get_attribute("data-node") == str(step["index"])
        if step["index"] in by_act:
            shown = json.loads(page.locator("#stepper-eq").get_attribute("data-delta"))
            expected = by_act[step["index"]]["delta"][0]
            assert shown == pytest.approx(expected, rel=1e-12)
            strip = [float(s) for s in page.locator("#stepper-strip span").evaluate_all(
                "els => els.map(e => e.dataset.value)")]
            assert strip == pytest.approx(expected, rel=1e-12)
            seen += 1
    assert seen == 3
    assert page.locator("#stepper-pos").text_content().startswith(
        f"backward mode: {len(walk['steps'])} / {len(walk['steps'])}")


def test_stepper_shows_each_nodes_jaxpr_equations_beside_the_tape(page, server):
    """Beside the tape's numbers, the equations of JAX's trace that carry the lit
    node's scope: the lines shown are the server's, node by node, both modes, named as
    the tape side names the node; the buttons stop at the ends; the note says what
    the stepper's network is."""
    import httpx

    page.goto(f"{server.url}/#depth=2&width=3&activation=tanh&steps=5&residual=true")
    page.wait_for_function("() => document.querySelectorAll('#stepper-graph .node').length > 0")
    walk = httpx.post(f"{server.url}/api/tape/inspect",
                      json={"depth": 2, "width": 3, "activation": "tanh", "init": "xavier_normal",
                            "sigma_w": 1.0, "sigma_b": 0.0, "seed": 0, "loss": "mse"}).json()
    jx = walk["jaxpr"]
    title = page.locator("#stepper-jaxpr-title")
    lines = page.locator("#stepper-jaxpr-eqns .eqn")
    assert f"{len(jx['backward'])} for the tape’s {len(walk['steps'])} nodes" \
        in title.text_content()
    nodes = list(dict.fromkeys(e["node"] for e in jx["backward"]))  # a line each
    label = {n["id"]: n["label"] for n in walk["graph"]["nodes"]}
    assert lines.all_text_contents() == [
        f"{label[n]}: {sum(e['node'] == n for e in jx['backward'])} equation"
        + ("s" if sum(e['node'] == n for e in jx['backward']) > 1 else "") + ", "
        + ", ".join(e["primitive"] for e in jx["backward"] if e["node"] == n) for n in nodes]
    note = page.locator("#stepper-note").text_content()
    assert "2 hidden layers of 3 units" in note and "without the Lab’s skip connections" in note
    assert page.locator("#stepper-back").is_disabled()
    for step in walk["steps"]:
        page.click("#stepper-next")
        mine = [e["text"] for e in jx["backward"] if e["node"] == step["index"]]
        assert lines.all_text_contents() == mine
        assert title.text_content().startswith(
            f"{step['label']}: {len(mine)} of the {len(jx['backward'])} equations, "
            f"scope transpose(jvp({step['label']}))")
    assert page.locator("#stepper-next").is_disabled()
    # the output layer's dense: ∂W and ∂a, two matmuls, as JAX writes them, explained
    page.click("#stepper-reset")
    page.click("#stepper-next")
    page.click("#stepper-next")
    assert sum("dot_general[" in t for t in lines.all_text_contents()) == 2
    assert "∂W = δᵀ a" in title.text_content()
    page.click("#stepper-forward")  # forward mode, its first node lit
    first = walk["forward"][0]
    dense = next(n for n in walk["graph"]["nodes"] if n["op"] == "dense")  # the node lit
    mine = [e["text"] for e in jx["forward"] if e["node"] == first["index"]]
    assert lines.all_text_contents() == mine
    assert page.locator("#stepper-eq").text_content().startswith(dense["label"])
    assert title.text_content().startswith(
        f"{dense['label']}: {len(mine)} of the {len(jx['forward'])} equations, "
        f"scope jvp({dense['label']})")
    # every line fits its column: wrapped, nothing cut off
    assert page.evaluate("() => { const b = document.getElementById('stepper-jaxpr-eqns');"
                         " return b.scrollWidth <= b.clientWidth + 1; }")


def test_depth_500_at_20_frames_per_second_stays_smooth(page, server):
    """Frames are batched per animation frame: at depth 500 the main thread keeps
    painting while ~20 frames per second stream in."""
    page.goto(f"{server.url}/#depth=500&width=8&batch_size=8&steps=3000")
    page.wait_for_function("() => window.backproplab?.state.steps.length > 0", timeout=20000)
    gaps = page.evaluate("""() => new Promise(resolve => {
        const gaps = []; let last = performance.now();
        const start = last; const seen0 = window.backproplab.state.steps.length;
        function tick(now) {
            gaps.push(now - last); last = now;
            if (now - start < 3000) requestAnimationFrame(tick);
            else resolve({gaps, received: window.backproplab.state.steps.length - seen0});
        }
        requestAnimationFrame(tick);
    })""")
    frame_gaps = sorted(gaps["gaps"])
    assert gaps["received"] >= 10  # frames kept arriving
    assert frame_gaps[len(frame_gaps) // 2] < 100  # median frame under 100 ms
    assert frame_gaps[-1] < 1000  # never frozen
    assert page.evaluate("() => document.getElementById('plot-flow').data[0].x.length") == 501
    assert page.errors == []


def test_api_docs_render_offline_under_the_csp(page, server):
    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=10000)
    paths = page.locator(".opblock-summary-path").all_text_contents()
    assert any("/api/live" in p or "/api/runs" in p for p in paths)
    hosts = {urlsplit(u).hostname for u in page.requests if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}
    assert page.errors == []


def test_page_picks_the_run_up_again_after_a_server_restart(browser):
    first = make_server()
    first.__enter__()
    port = int(first.url.rsplit(":", 1)[1])
    page = browser.new_page()
    try:
        page.goto(f"{first.url}/#{SMALL}&steps=2000")
        page.wait_for_function("() => window.backproplab?.state.steps.length > 0")
        old_run = page.evaluate("() => window.backproplab.state.runId")
        first.__exit__(None, None, None)
        with make_server(port=port):
            page.wait_for_function(
                f"() => {{ const s = window.backproplab.state; return s.runId && "
                f"s.runId !== '{old_run}' && s.steps.length > 0; }}", timeout=15000)
    finally:
        page.close()


def test_precision_choices_follow_the_servers_devices(page, server):
    """dtype offers tf32 only where the server has a CUDA device (from /api/info)."""
    import httpx

    page.goto(f"{server.url}/#{SMALL}")
    page.wait_for_function("() => window.backproplab?.state.schema")
    options = page.locator("#ctl-dtype option").evaluate_all("els => els.map(e => e.value)")
    devices = httpx.get(f"{server.url}/api/info").json()["devices"]
    assert {"float32", "float64", "bfloat16"} <= set(options)
    assert ("tf32" in options) == ("cuda" in devices)


def test_input_size_is_the_gaussian_data_sets_and_says_so(page, server):
    """A data set with inputs of its own: the input size is off, and says how many
    features the data set has (the server's count)."""
    import httpx

    features = httpx.get(f"{server.url}/api/info").json()["input_features"]
    page.goto(f"{server.url}/#dataset=mnist1d&input_dim=3&steps=5")
    field = page.locator("#ctl-input_dim-num")
    field.wait_for()
    page.wait_for_function("() => document.getElementById('ctl-input_dim-num').disabled")
    note = page.locator("#ctl-input_dim-num ~ .field-note").text_content()
    assert note == f"mnist1d brings its own inputs ({features['mnist1d']} features); " \
                   "this is gaussian’s"
    assert page.locator("#ctl-input_dim").is_disabled()
    page.select_option("#ctl-dataset", "gaussian")
    page.wait_for_function("() => !document.getElementById('ctl-input_dim-num').disabled")
    assert page.locator("#ctl-input_dim-num ~ .field-note").text_content() == ""


def test_arrow_keys_walk_the_stepper_after_its_buttons_and_only_on_the_lab(page, server):
    page.goto(f"{server.url}/#depth=2&width=3&steps=5")
    page.wait_for_function("() => document.querySelectorAll('#stepper-graph .node').length > 0")
    pos = page.locator("#stepper-pos")
    page.click("#stepper-next")  # the button keeps the focus
    page.keyboard.press("ArrowRight")
    assert pos.text_content().startswith("backward mode: 2 / ")
    page.keyboard.press("ArrowLeft")
    assert pos.text_content().startswith("backward mode: 1 / ")
    page.click("nav#pages button:has-text('Runs')")
    page.wait_for_function("() => document.getElementById('page-lab').offsetParent === null")
    page.keyboard.press("ArrowRight")
    page.click("nav#pages button:has-text('Lab')")
    assert pos.text_content().startswith("backward mode: 1 / ")
