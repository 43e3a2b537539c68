"""The Lab and Runs pages as a newcomer reads them, in Debian's Chromium: no text cut off
or overlapping in any panel (at default settings and with every preset), a status line
that tells the present (after an experiment, while paused, after Reset), a preset menu
that names the preset the settings are, disabled buttons that look disabled, a loss
panel titled by what it draws, and durations written as a person writes them."""

import math
import re

import pytest

pytestmark = pytest.mark.browser
SMALL = "depth=6&width=16&steps=20&batch_size=8"
READY = "() => window.backproplab?.state.schema && (document.getElementById('plot-flow').data" \
        " || []).length > 0"
SIDE_READY = ("() => ['plot-phase', 'plot-modes'].every(id => (document.getElementById(id)"
              ".data || []).length > 0)")
PRESETS = ["vanishing", "exploding", "dead ReLUs", "He + ReLU", "critical tanh",
           "residual rescue", "orthogonal isometry", "gradient clipping"]

# Every piece of text a panel shows, and where it is drawn, against the box it must stay
# in: HTML text inside its panel, Plotly's SVG text (axis titles, ticks, legends,
# annotations, bar labels) inside its plot, the stepper's node labels inside its graph.
# Then the pairs of Plotly labels that overlap (a legend over an axis title, say).
LAYOUT_PROBLEMS = r"""(root) => {
  const problems = [];
  const tol = 1;
  const inside = (r, b) => r.left >= b.left - tol && r.right <= b.right + tol
    && r.top >= b.top - tol && r.bottom <= b.bottom + tol;
  const seen = (el) => {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) return null;
    for (let e = el; e && e !== document; e = e.parentElement || e.parentNode) {
      const cs = getComputedStyle(e);
      if (cs.display === 'none' || cs.visibility === 'hidden' || cs.opacity === '0') return null;
    }
    return r;
  };
  const ownText = (el) => [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  const where = (el) => el.closest('[id]')?.id || el.tagName;
  for (const view of document.querySelectorAll(root)) {
    const vbox = seen(view);
    if (!vbox) continue;
    for (const el of view.querySelectorAll('*')) {
      if (el.closest('svg') || !ownText(el)) continue;
      const r = seen(el);
      if (r && !inside(r, vbox)) problems.push(`${view.id}: “${el.textContent.trim()}” `
        + `(${where(el)}) outside its panel`);
      if (r && el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflow === 'hidden') {
        problems.push(`${view.id}: “${el.textContent.trim()}” clipped`);
      }
    }
    for (const svg of view.querySelectorAll('svg')) {
      const plot = svg.closest('.plot') || svg;
      const pbox = seen(plot);
      if (!pbox) continue;
      const labels = [];
      for (const t of svg.querySelectorAll('text')) {
        if (t.closest('.hoverlayer') || !t.textContent.trim()) continue;
        const r = seen(t);
        if (!r) continue;
        if (!inside(r, pbox)) {
          problems.push(`${view.id}: “${t.textContent.trim()}” outside its plot`);
        }
        const kind = t.closest('.legend') ? 'legend'
          : t.closest('[class*="title"], .annotation, .cbtitle') ? 'title' : null;
        if (kind) labels.push({ kind, text: t.textContent.trim(), r,
          group: t.closest('.legend') || t });
      }
      // a legend over the plotting area (its data), or a legend entry over an axis title
      // or annotation, or two titles over each other
      const area = svg.querySelector('.draglayer .nsewdrag');
      const legend = svg.querySelector('.legend');
      const [ar, lr] = [area && seen(area), legend && seen(legend)];
      if (ar && lr && Math.min(ar.right, lr.right) - Math.max(ar.left, lr.left) > 2
          && Math.min(ar.bottom, lr.bottom) - Math.max(ar.top, lr.top) > 2) {
        problems.push(`${view.id}: the legend covers the plot`);
      }
      for (let i = 0; i < labels.length; i += 1) {
        for (let j = i + 1; j < labels.length; j += 1) {
          const [a, b] = [labels[i], labels[j]];
          if (a.kind === 'legend' && b.kind === 'legend') continue;
          const overlap = Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left) > 2
            && Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top) > 2;
          if (overlap) problems.push(`${view.id}: “${a.text}” overlaps “${b.text}”`);
        }
      }
    }
  }
  return problems;
}"""


SERVER_SETTINGS = {"max_sessions": 16, "frame_rate": 30}  # for conftest's server


PAGE_OPTIONS = {"console_errors": False}  # for conftest's page


def js_fmt(value: float, digits: int = 3) -> str:
    """format.js fmt(v): toPrecision(digits) between 1e-3 and 1e4 (plain, not 1.12e+3)."""
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
        return f"{mantissa}e{int(exponent):+d}"
    places = digits - 1 - math.floor(math.log10(abs(value)))
    return f"{value:.{max(places, 0)}f}" if places >= 0 else f"{round(value, places):.0f}"


def open_lab(page, server, hash_=SMALL):
    page.goto(f"{server.url}/#{hash_}")
    page.wait_for_function(READY, timeout=20000)


def state(page, expression):
    return page.evaluate(f"() => window.backproplab.state.{expression}")


def preset_shown(page):
    return page.locator("#preset option:checked").text_content()


def choose_preset(page, words):
    label = page.locator("#preset option", has_text=words).first.text_content()
    page.select_option("#preset", label=label)
    return label


def wait_layout_settled(page):
    """The side panels drawn and the throttled plots caught up with the last frame."""
    page.wait_for_function(SIDE_READY, timeout=20000)
    page.wait_for_timeout(600)


# --- 1. nothing cut off, nothing over anything ----------------------------------------------

def test_no_panel_text_is_cut_off_or_overlapping_at_default_settings(page, server):
    page.goto(f"{server.url}/")
    page.wait_for_function(READY, timeout=20000)
    wait_layout_settled(page)
    assert page.evaluate(LAYOUT_PROBLEMS, "#page-lab .view") == []
    # the two texts the newcomer found cut off: whole, inside their panels, and saying it
    note = page.locator("#spectrum-note")
    assert note.is_visible() and "Jacobian every k steps" in note.text_content()
    caption = page.locator("#plot-modes-caption")
    assert caption.is_visible() and "predicted n/m" in caption.text_content()


@pytest.mark.parametrize("words", PRESETS)
def test_no_panel_text_is_cut_off_or_overlapping_with_each_preset(page, server, words):
    open_lab(page, server)
    choose_preset(page, words)
    page.wait_for_function("() => window.backproplab.state.latest"
                           " && window.backproplab.state.theory", timeout=30000)
    wait_layout_settled(page)
    assert page.evaluate(LAYOUT_PROBLEMS, "#page-lab .view") == []


def test_a_network_off_the_phase_diagram_is_said_to_be(page, server):
    open_lab(page, server, SMALL + "&init=normal&sigma_w=3.5")  # σ_w² = 12.25 > the grid's 4
    page.wait_for_function("() => (document.getElementById('plot-phase').data || [])"
                           ".some(t => t.name?.startsWith('this network'))", timeout=20000)
    star = page.evaluate("() => document.getElementById('plot-phase').data"
                         ".find(t => t.name?.startsWith('this network'))")
    grid = page.evaluate("() => window.backproplab.state.phase.analytic.sigma_w2")
    assert star["name"] == "this network"
    assert star["x"] == [grid[-1]]  # on the edge, where it can be seen
    where = page.locator("#phase-where")
    assert where.is_visible() and "σ_w² = 12.3" in where.text_content()
    assert "outside the diagram" in where.text_content()
    page.fill("#ctl-sigma_w-num", "1")
    page.press("#ctl-sigma_w-num", "Enter")
    page.wait_for_function("() => document.getElementById('phase-where').hidden", timeout=20000)
    star = page.evaluate("() => document.getElementById('plot-phase').data"
                         ".find(t => t.name === 'this network')")
    assert star["x"] == [pytest.approx(1.0)]  # σ_w² = 1: inside, where it is


def test_the_spectrum_panel_explains_itself_in_text_that_wraps(page, server):
    page.set_viewport_size({"width": 1240, "height": 900})  # two narrow columns of panels
    open_lab(page, server)
    note = page.locator("#spectrum-note")
    box, panel = note.bounding_box(), page.locator("#view-spectrum").bounding_box()
    assert note.is_visible() and box["height"] > 20  # more than one line: it wrapped
    assert box["x"] >= panel["x"] and box["x"] + box["width"] <= panel["x"] + panel["width"]
    assert note.text_content().startswith("The spectrum is off")
    page.click("#spectrum-on")
    page.wait_for_function("() => (document.getElementById('plot-spectrum').data || [])"
                           ".some(t => t.type === 'histogram')", timeout=20000)
    assert not note.is_visible()
    assert page.evaluate(LAYOUT_PROBLEMS, "#view-spectrum") == []


def test_the_modes_caption_is_whole_and_states_the_servers_numbers(page, server):
    with page.expect_response(lambda r: "/api/tape/jacobian-modes" in r.url,
                              timeout=20000) as got:
        open_lab(page, server)
    result = got.value.json()
    page.wait_for_function("() => document.getElementById('plot-modes-caption')"
                           ".textContent.length > 0", timeout=10000)
    caption = page.locator("#plot-modes-caption").text_content()
    n, m = result["n_inputs"], result["n_outputs"]
    assert f"n = {n} inputs, m = {m} outputs" in caption
    assert f"predicted n/m = {js_fmt(n / m)}." in caption, caption
    assert f"time ratio {js_fmt(result['measured_ratio'])}," in caption, caption
    box = page.locator("#plot-modes-caption").bounding_box()
    panel = page.locator("#view-modes").bounding_box()
    assert box["y"] + box["height"] <= panel["y"] + panel["height"]
    assert box["x"] + box["width"] <= panel["x"] + panel["width"]


# --- 2. the status line after an experiment -------------------------------------------------

def test_the_status_line_says_an_experiment_finished_not_that_it_started(page, server):
    page.goto(f"{server.url}/#page=experiments&experiments.name=glorot2010")
    page.wait_for_selector(".exp-list button")
    page.click("#exp-run")
    page.wait_for_selector("#exp-checks tbody tr", timeout=120_000)
    conn = page.locator("#conn").text_content()
    assert conn == "experiment glorot2010 finished: 2 of 2 runs done", conn
    verdict = page.locator("#exp-verdict").text_content()
    # 7: where the runs ran, in English; 8: how long, as a person writes it
    assert " runs on in-process" not in verdict
    assert re.search(r"2 runs, in the server's own process, in "
                     r"(\d+(\.\d+)? (ms|s)|\d+ min \d+ s)$", verdict), verdict
    assert "e+" not in verdict


# --- 3. Reset leaves a paused run paused -----------------------------------------------------

def test_reset_keeps_a_paused_run_paused_and_says_so(page, server):
    open_lab(page, server, SMALL.replace("steps=20", "steps=100000"))
    page.wait_for_function("() => window.backproplab.state.status === 'running'")
    # every text the status line shows from the pause on
    page.evaluate("""() => { window.connSeen = [];
        new MutationObserver(() => window.connSeen.push(document.getElementById('conn')
          .textContent)).observe(document.getElementById('conn'),
          {childList: true, characterData: true, subtree: true}); }""")
    page.click("#pause")
    page.wait_for_function("() => document.getElementById('conn').textContent"
                           ".startsWith('paused')", timeout=5000)
    page.click("#reset")
    # the new run is built and shows its initialization (step 0), then waits
    page.wait_for_function("() => window.backproplab.state.latest?.step === 0"
                           " && window.backproplab.state.status === 'running'", timeout=10000)
    page.wait_for_timeout(800)
    assert state(page, "steps.length") == 1
    assert state(page, "latest.step") == 0
    conn = page.locator("#conn").text_content()
    assert conn.startswith("paused at step 0") and "Reset" in conn, conn
    page.click("#step")
    page.wait_for_function("() => window.backproplab.state.latest?.step === 1", timeout=5000)
    page.wait_for_timeout(400)
    assert state(page, "latest.step") == 1
    assert page.locator("#conn").text_content().startswith("paused at step 1")
    seen = page.evaluate("() => window.connSeen")
    assert seen and not any("running" in text for text in seen), seen
    page.click("#play")
    page.wait_for_function("() => document.getElementById('conn').textContent === 'running'",
                           timeout=5000)
    page.wait_for_function("() => window.backproplab.state.latest?.step > 3", timeout=10000)


def test_a_setting_changed_while_paused_restarts_paused(page, server):
    open_lab(page, server, SMALL.replace("steps=20", "steps=100000"))
    page.wait_for_function("() => window.backproplab.state.status === 'running'")
    page.click("#pause")
    page.fill("#ctl-depth-num", "4")
    page.press("#ctl-depth-num", "Enter")
    page.wait_for_function("() => window.backproplab.state.latest?.layers.length === 5",
                           timeout=10000)
    page.wait_for_timeout(800)
    assert state(page, "latest.step") == 0
    assert page.locator("#conn").text_content().startswith("paused at step 0")


# --- 4. the preset menu names the preset the settings are ------------------------------------

def test_turning_the_spectrum_on_keeps_the_presets_name(page, server):
    open_lab(page, server)
    label = choose_preset(page, "He + ReLU")
    page.click("#spectrum-on")  # records the Jacobian: the experiment is the same
    assert state(page, "config.record.jacobian_every") == 10
    assert preset_shown(page) == label
    page.fill("#ctl-depth-num", "12")
    page.press("#ctl-depth-num", "Enter")
    assert preset_shown(page) == "custom"
    page.fill("#ctl-depth-num", "50")  # back to the preset's depth: its story again
    page.press("#ctl-depth-num", "Enter")
    assert preset_shown(page) == label


def test_a_link_or_a_stored_run_with_a_presets_settings_names_the_preset(page, server):
    open_lab(page, server)
    label = choose_preset(page, "exploding")
    preset_hash = page.url.split("#", 1)[1]
    config = state(page, "config")
    # a link with the preset's settings
    page.goto(f"{server.url}/#{SMALL}")
    page.wait_for_function(READY, timeout=20000)
    assert preset_shown(page) == "custom"
    page.goto(f"{server.url}/?again#{preset_hash}")
    page.wait_for_function("() => window.backproplab?.state.schema", timeout=20000)
    assert preset_shown(page) == label
    # a stored run of the preset, opened from the Runs page into a Lab showing another config
    from backproplab.api.schemas import validate_config

    checked = validate_config(config)
    job = server.manager.start_headless(checked.to_spec(), checked.model_dump())
    job.join(60)
    open_lab(page, server)
    assert preset_shown(page) == "custom"
    page.click("#pages button:has-text('Runs')")
    page.locator(f"tr[data-run='{job.id}'] .run-open").click()
    page.wait_for_function("() => window.backproplab.state.source === 'import'", timeout=10000)
    assert preset_shown(page) == label
    assert state(page, "config.depth") == 300


# --- 5. disabled paging buttons look disabled ------------------------------------------------

STYLE = "el => { const s = getComputedStyle(el); return [s.color, s.borderStyle, s.cursor]; }"


def test_the_runs_pages_disabled_buttons_look_disabled(page, server):
    store = server.manager.store
    for run in store.list(limit=500):
        store.delete(run["id"])
    config = {"depth": 2, "width": 4, "steps": 1}
    ids = [store.create({**config, "seed": i}, "imported", name=f"run {i}") for i in range(27)]
    for run_id in ids:
        store.finish(run_id, "done")
    page.goto(f"{server.url}/#page=runs")
    page.wait_for_selector(f"tr[data-run='{ids[-1]}']")
    enabled = page.locator("button:has-text('Refresh')").evaluate(STYLE)
    newer, older = page.locator("#runs-newer"), page.locator("#runs-older")
    assert newer.get_attribute("disabled") is not None and older.get_attribute("disabled") is None
    assert newer.evaluate(STYLE) != enabled and older.evaluate(STYLE) == enabled
    assert newer.evaluate(STYLE)[2] == "not-allowed"
    assert page.locator("#runs-compare").evaluate(STYLE) == newer.evaluate(STYLE)
    older.click()
    page.wait_for_selector(f"tr[data-run='{ids[0]}']")
    assert older.get_attribute("disabled") is not None and older.evaluate(STYLE)[2] == "not-allowed"
    assert newer.get_attribute("disabled") is None and newer.evaluate(STYLE) == enabled
    # each row's cell of actions is a table cell: its bottom border lines up with the row's
    row = page.locator(f"tr[data-run='{ids[0]}']")
    bottoms = row.locator("td").evaluate_all(
        "tds => tds.map(td => Math.round(td.getBoundingClientRect().bottom))")
    assert len(set(bottoms)) == 1, bottoms
    assert page.evaluate(LAYOUT_PROBLEMS, "#page-runs") == []


# --- 6. the loss panel's title follows what it draws ----------------------------------------

def test_the_loss_panel_is_titled_by_what_it_draws(page, server):
    open_lab(page, server)  # mse: a loss, no accuracy
    page.wait_for_function("() => (document.getElementById('plot-loss').data || []).length")
    assert page.locator("#view-loss h2").text_content() == "Loss"
    names = page.evaluate("() => document.getElementById('plot-loss').data.map(t => t.name)")
    assert names == ["loss"]
    assert page.locator("#plot-loss .y2title").count() == 0
    page.select_option("#ctl-loss", "cross_entropy")
    page.wait_for_function("() => (document.getElementById('plot-loss').data || [])"
                           ".some(t => t.name === 'accuracy')", timeout=20000)
    assert page.locator("#view-loss h2").text_content() == "Loss and accuracy"
    assert page.locator("#plot-loss .y2title").text_content() == "accuracy"
    assert page.evaluate(LAYOUT_PROBLEMS, "#view-loss") == []


def round_ticks(labels):
    """Tick labels that are round numbers (two significant digits at most), evenly spaced."""
    values = [float(t.replace("−", "-")) for t in labels]
    steps = {round(b - a, 9) for a, b in zip(values, values[1:], strict=False)}
    return all(float(f"{v:.2g}") == v for v in values) and len(steps) == 1


def test_right_hand_axes_have_round_ticks_of_their_own(page, server):
    open_lab(page, server, SMALL + "&loss=cross_entropy")
    page.wait_for_function("() => window.backproplab.state.status === 'done'", timeout=20000)
    page.wait_for_timeout(600)
    accuracy = page.locator("#plot-loss g.y2tick text").all_text_contents()
    assert accuracy == ["0", "0.25", "0.5", "0.75", "1"], accuracy
    std = page.locator("#plot-activations g.y3tick text").all_text_contents()
    assert len(std) >= 3 and round_ticks(std), std
    top = page.evaluate("() => document.getElementById('plot-activations').layout.yaxis3.range[1]")
    assert float(std[-1]) <= top  # every label on the axis is inside its range


def test_a_single_step_run_has_whole_step_ticks(page, server):
    open_lab(page, server, SMALL.replace("steps=20", "steps=1"))
    page.wait_for_function("() => window.backproplab.state.status === 'done'", timeout=20000)
    page.wait_for_timeout(600)
    for plot in ("plot-loss", "plot-heatmap"):
        ticks = page.locator(f"#{plot} .xtick text").all_text_contents()
        assert ticks and all(re.fullmatch(r"−?\d+", t) for t in ticks), (plot, ticks)


# --- 8. durations ----------------------------------------------------------------------------

def python_duration(seconds: float) -> str:
    """The rule of format.js duration(), written again: 3 significant digits, ms below
    a second, s below a minute."""
    value = seconds * 1e3 if seconds < 1 else seconds
    return f"{float(f'{value:.3g}'):g} {'ms' if seconds < 1 else 's'}"


@pytest.mark.parametrize("seconds,text", [(0.00042, "0.42 ms"), (0.00414, "4.14 ms"),
                                          (0.812, "812 ms"), (1.12, "1.12 s"),
                                          (12.34, "12.3 s"), (125, "2 min 5 s"),
                                          (3725, "1 h 2 min")])
def test_durations_read_in_ms_s_and_minutes(page, server, seconds, text):
    page.goto(f"{server.url}/static/favicon.svg")
    shown = page.evaluate("async (s) => (await import('/static/js/format.js')).duration(s)",
                          seconds)
    assert shown == text
    if seconds < 60:
        assert shown == python_duration(seconds)


def test_the_modes_bars_show_the_servers_times_as_durations(page, server):
    with page.expect_response(lambda r: "/api/tape/jacobian-modes" in r.url,
                              timeout=20000) as got:
        open_lab(page, server)
    result = got.value.json()
    page.wait_for_function("() => (document.getElementById('plot-modes').data || []).length")
    texts = page.evaluate("() => document.getElementById('plot-modes').data[0].text")
    for text, passes, seconds in zip(texts, (result["forward_passes"], result["reverse_passes"]),
                                     (result["forward_seconds"], result["reverse_seconds"]),
                                     strict=True):
        assert text == f"{passes} passes, {python_duration(seconds)}"
    # no number anywhere on the page is written 1.12e+3
    body = page.evaluate("() => document.body.innerText + [...document.querySelectorAll("
                         "'svg text')].map(t => t.textContent).join(' ')")
    assert not re.search(r"\de\+[0-3]\b", body), re.findall(r"\S*\de\+[0-3]\S*", body)


# --- the Runs page's comparison reads as the Lab does ------------------------------------------

def headless_run(server, config):
    from backproplab.api.schemas import validate_config

    checked = validate_config(config)
    job = server.manager.start_headless(checked.to_spec(), checked.model_dump())
    job.join(60)
    assert server.manager.store.get(job.id)["status"] == "done"
    return job.id


def test_compared_log_axes_label_their_ticks_with_values(page, server):
    small = {"depth": 8, "width": 16, "steps": 30, "batch_size": 8, "activation": "tanh"}
    ids = [headless_run(server, {**small, "init": "normal", "sigma_w": 3.0}),
           headless_run(server, {**small, "init": "xavier_normal"})]
    page.goto(f"{server.url}/#page=runs&runs.compare={','.join(ids)}")
    page.wait_for_function("() => (document.getElementById('compare-loss-plot')?.data || [])"
                           ".length === 2", timeout=20000)
    page.wait_for_timeout(300)
    compared = page.evaluate(
        f"async () => (await fetch('/api/runs/compare?ids={','.join(ids)}')).json()")
    for plot, values in (
            ("compare-loss-plot", [v for r in compared["runs"] for v in r["series"]["loss"]]),
            ("compare-flow-plot", [v for r in compared["runs"] for v in r["last"]["delta_norm"]])):
        finite = [v for v in values if isinstance(v, float) and v > 0]
        labels = page.locator(f"#{plot} g.ytick text").all_text_contents()
        assert len(labels) >= 2, (plot, labels)
        for text in labels:  # the value at its tick (not a minor tick's "5" or "2")
            value = float(text.replace("−", "-"))
            assert min(finite) / 3 <= value <= max(finite) * 3, (plot, text)
    assert page.evaluate(LAYOUT_PROBLEMS, "#page-runs") == []


@pytest.mark.parametrize("value", [2.302585, 1.0, 7e-5, 4.2e8])
def test_one_value_on_a_log_axis_gets_a_decade_around_it_and_round_labels(page, server, value):
    """A one-step run's loss: not Plotly's crowded minor ticks over a sliver of an axis."""
    page.goto(f"{server.url}/static/favicon.svg")
    ticks = page.evaluate("async (v) => (await import('/static/js/views/loss.js'))"
                          ".logTicks([v, v])", value)
    lo, hi = ticks["range"]
    assert hi - lo == pytest.approx(1.0) and (lo + hi) / 2 == pytest.approx(math.log10(value))
    assert 2 <= len(ticks["tickvals"]) <= 4, ticks
    for v, text in zip(ticks["tickvals"], ticks["ticktext"], strict=True):
        assert lo <= math.log10(v) <= hi and float(text) == v
        assert f"{v / 10 ** math.floor(math.log10(v)):.6g}" in ("1", "2", "5")


@pytest.mark.parametrize("lo,hi", [(5.5, 7.5), (0.05, 0.3), (0.9, 2.2), (1e-3, 1e4), (40, 41),
                                   (0.02, 3e33), (1e-300, 1e300)])
def test_a_log_axis_labels_at_least_two_values_inside_the_data(page, server, lo, hi):
    page.goto(f"{server.url}/static/favicon.svg")
    ticks = page.evaluate("async ([lo, hi]) => (await import('/static/js/views/loss.js'))"
                          ".logTicks([lo, (lo + hi) / 2, hi])", [lo, hi])
    if "tickvals" not in ticks:  # too narrow for round ticks: Plotly's own, plain numbers
        assert hi / lo < 1.1 and ticks == {"exponentformat": "power"}
        return
    inside = [v for v in ticks["tickvals"] if lo <= v <= hi]
    assert len(inside) >= 2, ticks
    assert len(ticks["tickvals"]) <= 10, ticks  # labels that do not run into each other
    for value, text in zip(ticks["tickvals"], ticks["ticktext"], strict=True):
        assert float(text) == value  # each label is its tick's value
