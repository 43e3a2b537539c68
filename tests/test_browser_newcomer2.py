"""The Lab after a run has ended, imports that race, the status line on other pages, waits
that say what is happening, the stepper's forward mode, presets that tell their story, and
the Runs list, as a newcomer sees them in Debian's Chromium."""

import json
import math
import re
import time

import httpx
import pytest

from conftest import make_server, open_page
from test_browser_newcomer import LAYOUT_PROBLEMS, READY, SMALL, choose_preset, state

pytestmark = pytest.mark.browser
DONE = "() => window.backproplab.state.status === 'done'"


SERVER_SETTINGS = {"max_sessions": 16, "frame_rate": 30}  # for conftest's server


PAGE_OPTIONS = {"console_errors": False}  # for conftest's page


def open_lab(page, server, hash_=SMALL):
    page.goto(f"{server.url}/#{hash_}")
    page.wait_for_function(READY, timeout=20000)


def conn(page):
    return page.locator("#conn").text_content()


def flow_traces(page):
    return page.evaluate("() => (document.getElementById('plot-flow').data || [])"
                         ".map(t => JSON.stringify(t.y))")


# --- 1, 2: Pause and Step once a run has finished ------------------------------------------

def test_pause_after_a_finished_run_keeps_it_on_screen(page, server):
    open_lab(page, server)
    page.wait_for_function(DONE, timeout=20000)
    page.wait_for_timeout(500)
    before = flow_traces(page)
    assert before and page.locator("#progress").text_content().strip() == "20/20"
    page.click("#pause")
    page.keyboard.press("Space")  # the keyboard's pause too
    page.wait_for_timeout(800)
    assert flow_traces(page) == before  # the finished run stays drawn
    assert page.locator("#stale-note").is_hidden()
    text = conn(page)
    assert text == "done", text
    body = page.evaluate("() => document.body.innerText")
    assert "send 'start'" not in body and "needs a running run" not in body
    assert page.locator("#progress").text_content().strip() == "20/20"


def test_step_after_a_finished_run_says_it_began_a_new_run(page, server):
    open_lab(page, server)
    page.wait_for_function(DONE, timeout=20000)
    old = state(page, "runId")
    assert page.locator("#step").get_attribute("title") == \
        "Start a new run and take its first step"
    page.click("#step")
    page.wait_for_function("(old) => window.backproplab.state.runId"
                           " && window.backproplab.state.runId !== old"
                           " && window.backproplab.state.latest?.step === 0", arg=old,
                           timeout=10000)
    page.wait_for_timeout(400)
    text = conn(page)
    assert text.startswith("paused at step 0") and "Step began a new run" in text, text
    assert page.locator("#step").get_attribute("title") == "Take one step (and pause)"
    page.click("#step")  # a second Step steps the new run, and the note is gone
    page.wait_for_function("() => window.backproplab.state.latest?.step === 1", timeout=10000)
    page.wait_for_timeout(300)
    assert conn(page).startswith("paused at step 1 —"), conn(page)


# --- 3: two imports, the second one's outcome is the one shown ------------------------------

def test_the_last_import_is_the_one_reported_even_if_an_earlier_one_ends_later(
        page, server, tmp_path):
    from backproplab.api.schemas import validate_config

    checked = validate_config({"depth": 3, "width": 8, "steps": 12, "batch_size": 8})
    job = server.manager.start_headless(checked.to_spec(), checked.model_dump())
    job.join(60)
    good = tmp_path / "good.json"
    good.write_text(httpx.get(f"{server.url}/api/runs/{job.id}/export").text)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": 1, "steps": "not a list"}))
    open_lab(page, server)
    held = []
    page.route("**/api/runs/import", lambda route: held.append(route))
    page.set_input_files("#import-file", str(good))
    page.wait_for_function("() => document.getElementById('conn').textContent"
                           ".startsWith('importing good.json')", timeout=5000)
    deadline = time.time() + 5
    while len(held) < 1:
        assert time.time() < deadline
        page.wait_for_timeout(50)
    page.set_input_files("#import-file", str(bad))
    while len(held) < 2:
        assert time.time() < deadline
        page.wait_for_timeout(50)
    held[1].continue_()  # the bad file's 422 first
    page.wait_for_function("() => document.getElementById('conn').textContent"
                           ".startsWith('import failed')", timeout=10000)
    with page.expect_response("**/api/runs/import") as answered:
        held[0].continue_()  # then the good one, which must not replace the failure
    assert answered.value.status == 200
    page.wait_for_timeout(800)
    text = conn(page)
    assert text.startswith("import failed: bad.json is not a backproplab run record"), text
    assert state(page, "source") == "live"
    assert "imported" not in page.locator("#progress").text_content()


# --- 4: the Lab's status, on the other pages ----------------------------------------------

def test_other_pages_label_the_labs_status_as_the_labs(page, server):
    open_lab(page, server, SMALL.replace("steps=20", "steps=100000"))
    page.wait_for_function("() => window.backproplab.state.latest?.step > 2", timeout=20000)
    page.click("#pages button:has-text('Runs')")
    page.wait_for_selector("#runs-table")
    page.wait_for_timeout(400)
    text = conn(page)
    assert re.fullmatch(r"Lab: running \d+/100000", text), text
    first = int(text.split()[-1].split("/")[0])
    page.wait_for_timeout(1200)  # the Lab's run goes on, and its count with it
    assert int(conn(page).split()[-1].split("/")[0]) > first
    page.click("#pages button:has-text('Lab')")
    page.wait_for_timeout(400)
    assert conn(page) == "running"


def test_a_pages_own_status_does_not_follow_to_the_next_page(page, server):
    open_lab(page, server)
    page.wait_for_function(DONE, timeout=20000)
    page.click("#pages button:has-text('Runs')")
    page.wait_for_selector("#runs-table .run-name")
    page.locator(".run-name").first.fill("mine")
    page.locator(".run-name").first.press("Enter")
    page.wait_for_function("() => document.getElementById('conn').textContent"
                           ".startsWith('renamed to')", timeout=5000)
    page.click("#pages button:has-text('Watch')")  # another page: the Lab's status again
    page.wait_for_function("() => document.getElementById('conn').textContent"
                           ".startsWith('Lab: ')", timeout=5000)


def test_an_import_failure_on_the_lab_reads_as_the_labs_elsewhere(page, server, tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    open_lab(page, server)
    page.wait_for_function(DONE, timeout=20000)
    page.set_input_files("#import-file", str(bad))
    page.wait_for_function("() => document.getElementById('conn').textContent"
                           ".startsWith('import failed')", timeout=5000)
    page.click("#pages button:has-text('Runs')")
    page.wait_for_selector("#runs-table")
    assert conn(page).startswith("Lab: import failed: broken.json is not a JSON file")
    page.locator(".run-name").first.fill("mine")  # the page's own status replaces it
    page.locator(".run-name").first.press("Enter")
    page.wait_for_function("() => document.getElementById('conn').textContent"
                           ".startsWith('renamed to')", timeout=5000)


# --- 5: waits that say what is happening --------------------------------------------------

def test_a_new_jax_run_says_it_is_compiling_and_marks_the_old_plots(page, server):
    open_lab(page, server)
    page.wait_for_function(DONE, timeout=20000)
    page.select_option("#ctl-engine", "jax")
    page.wait_for_function("() => !window.backproplab.state.latest", timeout=5000)
    waiting = []  # what the page shows until the new run's first step
    deadline = time.time() + 120
    while not state(page, "latest") and time.time() < deadline:
        waiting.append(page.evaluate("""() => [document.getElementById('conn').textContent,
          !document.getElementById('previous-note').hidden
          && document.querySelector('.views').classList.contains('previous'),
          (document.getElementById('plot-loss').data || []).length > 0]"""))
        page.wait_for_timeout(100)
    assert state(page, "config.engine") == "jax" and state(page, "latest") is not None
    assert any("compiling its step" in text for text, *_ in waiting), waiting[:5]
    # the previous run's curves, still drawn, were marked as the previous run's
    assert all(drawn for *_, drawn in waiting)
    assert any(marked for _, marked, _ in waiting), waiting[-3:]
    page.wait_for_timeout(300)
    assert page.locator("#previous-note").is_hidden()  # and no longer, once it has a step
    assert page.evaluate("() => document.querySelector('.views').classList"
                         ".contains('previous')") is False


def test_empty_panels_say_loading(page, server):
    held = []
    page.route("**/api/phase*", lambda route: held.append(route))
    page.goto(f"{server.url}/#{SMALL}")
    page.wait_for_function(READY, timeout=20000)
    deadline = time.time() + 10
    while not held:  # the phase request waits for the side panels' short debounce
        assert time.time() < deadline
        page.wait_for_timeout(50)
    shown = page.evaluate("() => getComputedStyle(document.getElementById('plot-phase'),"
                          " '::before').content")
    assert shown == '"loading…"'
    for route in held:
        route.continue_()
    page.wait_for_function("() => (document.getElementById('plot-phase').data || []).length",
                           timeout=20000)
    assert page.evaluate("() => getComputedStyle(document.getElementById('plot-phase'),"
                         " '::before').content") in ("none", "normal")


# --- 6, 7: titles whole, progress in words, whole-number ticks ----------------------------

def test_every_lab_axis_title_is_whole_inside_its_plot(page, server):
    open_lab(page, server)
    page.wait_for_function(DONE, timeout=20000)
    page.wait_for_timeout(600)
    page.locator("#view-activations").scroll_into_view_if_needed()
    title = page.locator("#plot-activations .g-ytitle text").first
    assert title.text_content() == "fraction of units"
    box, plot = title.bounding_box(), page.locator("#plot-activations").bounding_box()
    assert box["y"] >= plot["y"] and box["y"] + box["height"] <= plot["y"] + plot["height"]
    assert box["x"] >= plot["x"]
    assert page.evaluate(LAYOUT_PROBLEMS, "#page-lab .view") == []


def test_the_exploding_preset_is_one_step_and_its_bar_says_so(page, server):
    open_lab(page, server)
    choose_preset(page, "exploding")
    page.wait_for_function("() => window.backproplab.state.status === 'done'"
                           " && window.backproplab.state.latest?.layers.length === 301",
                           timeout=60000)
    page.wait_for_timeout(400)
    assert page.locator("#ctl-steps-num").input_value() == "1"
    assert page.locator("#progress").text_content().strip() == "1/1"
    story = page.locator("#preset-story").text_content()
    assert story.startswith("exploding: One step, at initialization")


def test_a_run_that_ends_early_says_where_it_stopped(browser):
    with make_server(max_sessions=4, frame_rate=30, max_steps_seconds=0.5) as short, \
            open_page(browser, console_errors=False) as page:
        open_lab(page, short, SMALL.replace("steps=20", "steps=100000"))
        page.wait_for_function("() => window.backproplab.state.status === 'error'",
                               timeout=30000)
        # the label follows the status on the next render: wait for it, not a fixed time
        page.wait_for_function("() => document.getElementById('progress').textContent"
                               ".trim().startsWith('stopped after')", timeout=10000)
        done = state(page, "latest.step") + 1  # steps are numbered from 0 on the plots
        label = page.locator("#progress").text_content().strip()
        assert label == f"stopped after {done} of 100000 steps", label
        assert "compute-time limit" in conn(page)


def test_experiment_figures_tick_layers_at_whole_numbers(page, server):
    page.goto(f"{server.url}/#page=experiments&experiments.name=glorot2010")
    page.wait_for_selector(".exp-list button")
    page.click("#exp-run")
    page.wait_for_selector(".exp-figure .main-svg", timeout=120_000)
    page.wait_for_timeout(500)
    found = 0
    for figure in page.locator(".exp-figure").all():
        axes = figure.evaluate("""el => Object.keys(el.layout).filter(k => /^xaxis/.test(k))
          .map(k => [k, (el.layout[k].title || {}).text || ''])""")
        for key, title in axes:
            if "layer" not in title and "step" not in title:
                continue
            found += 1
            cls = "xtick" if key == "xaxis" else f"x{key[5:]}tick"
            ticks = figure.locator(f"g.{cls} text").all_text_contents()
            assert ticks and all(re.fullmatch(r"−?\d+", t) for t in ticks), (title, ticks)
    assert found


# --- 8: the Runs list ---------------------------------------------------------------------

def test_preset_clicks_leave_one_run_and_the_network_column_tells_runs_apart(page, server):
    store = server.manager.store
    for run in store.list(limit=500):
        store.delete(run["id"])
    open_lab(page, server, SMALL.replace("steps=20", "steps=100000"))
    for words in ("He + ReLU", "critical tanh", "vanishing"):  # each replaced at once
        choose_preset(page, words)
        page.wait_for_function("() => window.backproplab.state.latest", timeout=20000)
    page.fill("#ctl-steps-num", "5")
    page.press("#ctl-steps-num", "Enter")
    page.wait_for_function("() => window.backproplab.state.status === 'done'"
                           " && window.backproplab.state.config.steps === 5", timeout=60000)
    finished = state(page, "runId")
    page.goto(f"{server.url}/#page=runs&runs.source=live")  # the Lab's runs only
    page.wait_for_selector(f"tr[data-run='{finished}']")
    rows = page.locator("#runs-rows tr")
    for _ in range(20):  # until every replaced run has ended (dropped) on the server
        page.click("button:has-text('Refresh')")
        page.wait_for_timeout(500)
        listed = {r.get_attribute("data-run"): r.locator("td").nth(3).text_content()
                  for r in rows.all()}
        if "running" not in listed.values():
            break
    # the page's first run and the three presets' runs were replaced mid-way: not kept
    # (a preset run that finished its 200 steps before the next click would be)
    assert listed[finished] == "done" and set(listed.values()) == {"done"}, listed
    assert all(store.get(i)["config"]["steps"] in (5, 200) for i in listed), listed
    network = rows.locator(f"xpath=self::tr[@data-run='{finished}']").locator("td") \
        .nth(6).text_content()
    config = store.get(finished)["config"]
    sigma_b = f" σ_b {config['sigma_b']:g}" if config["sigma_b"] else ""
    assert network == (f"{config['depth']}×{config['width']} sigmoid, xavier_normal "
                       f"σ_w {config['sigma_w']:g}{sigma_b}, {config['engine']} "
                       f"{config['dtype']}, lr {config['lr']:g}"), network
    rule = page.locator("#runs-rule")
    assert rule.is_visible() and "replaced mid-way by a new setting" in rule.text_content()
    assert "finished" in rule.text_content() and "paused" in rule.text_content()


# --- 9: the stepper -------------------------------------------------------------------------

def test_stepper_long_labels_fit_their_boxes_with_the_full_name_as_tooltip(page, server):
    page.set_viewport_size({"width": 1100, "height": 900})
    open_lab(page, server, "depth=3&width=3&activation=tanh&steps=5&loss=cross_entropy")
    page.wait_for_function("() => [...document.querySelectorAll('#stepper-graph .node title')]"
                           ".some(t => t.textContent.includes('softmax_cross_entropy'))",
                           timeout=20000)
    nodes = page.locator("#stepper-graph .node")
    for i in range(nodes.count()):
        node = nodes.nth(i)
        text, rect = node.locator("text").bounding_box(), node.locator("rect").bounding_box()
        assert text["x"] >= rect["x"] - 0.5 and text["x"] + text["width"] <= \
            rect["x"] + rect["width"] + 0.5, node.locator("title").text_content()
    last = nodes.last
    assert last.locator("text").text_content() in ("softmax CE", "softmaxCE")  # 1 or 2 lines
    text, rect = last.locator("text").bounding_box(), last.locator("rect").bounding_box()
    assert text["y"] >= rect["y"] and text["y"] + text["height"] <= rect["y"] + rect["height"]
    assert last.locator("title").text_content().startswith("softmax_cross_entropy#")
    page.click("#stepper-forward")
    assert page.locator("#stepper-forward").text_content() == "Backward mode ◁"
    page.click("#stepper-forward")  # back: the button says what it does
    assert page.locator("#stepper-forward").text_content() == "Forward mode ▷"
    assert page.locator("#stepper-pos").text_content().startswith("backward mode")


# --- 10: the gradient clipping preset tells what it shows ---------------------------------

def test_the_clipping_preset_says_what_it_shows_and_the_run_agrees(page, server):
    open_lab(page, server)
    label = choose_preset(page, "gradient clipping")
    page.wait_for_function(DONE, timeout=120000)
    page.wait_for_timeout(600)
    story = page.locator("#preset-story").text_content()
    assert "loss stays finite" in story and "diverges to NaN" in story
    assert "does not make the network learn" in story
    config = state(page, "config")
    steps = state(page, "steps")
    losses = [s["loss"] for s in steps]
    factors = [s["clip_factor"] for s in steps]
    assert all(isinstance(v, float) for v in losses)  # finite (NaN arrives as "NaN")
    assert max(factors) < 0.01  # the gradients exploded: every step was clipped hard
    assert min(losses[-20:]) > 0.5 * losses[0]  # and the loss did not come down
    # the same run unclipped, as the story says, diverges
    from backproplab.api.schemas import validate_config

    checked = validate_config({**config, "clip": None})
    job = server.manager.start_headless(checked.to_spec(), checked.model_dump())
    job.join(120)
    unclipped = [s["loss"] for s in job.record()["steps"]]
    assert any(not math.isfinite(v) for v in unclipped)
    assert page.locator("#preset option:checked").text_content() == label


def whole_ticks(page, selector):
    ticks = page.locator(selector).all_text_contents()
    return ticks and all(re.fullmatch(r"−?\d+", t) for t in ticks), ticks


def test_layer_axes_of_a_shallow_network_tick_whole_layers(page, server):
    open_lab(page, server, "depth=2&width=8&steps=3&batch_size=8")
    page.wait_for_function(DONE, timeout=20000)
    page.wait_for_timeout(600)
    for selector in ("#plot-activations g.xtick text", "#plot-heatmap g.ytick text",
                     "#plot-heatmap g.xtick text", "#plot-loss g.xtick text"):
        ok, ticks = whole_ticks(page, selector)
        assert ok, (selector, ticks)
    a = headless_run(server, {"depth": 2, "width": 8, "steps": 3, "batch_size": 8})
    b = headless_run(server, {"depth": 2, "width": 8, "steps": 3, "batch_size": 8, "seed": 1})
    page.goto(f"{server.url}/#page=runs&runs.compare={a},{b}")
    page.wait_for_function("() => (document.getElementById('compare-loss-plot')?.data || [])"
                           ".length === 2", timeout=20000)
    page.wait_for_timeout(300)
    for selector in ("#compare-flow-plot g.xtick text", "#compare-loss-plot g.xtick text"):
        ok, ticks = whole_ticks(page, selector)
        assert ok, (selector, ticks)


def headless_run(server, config):
    from backproplab.api.schemas import validate_config

    checked = validate_config(config)
    job = server.manager.start_headless(checked.to_spec(), checked.model_dump())
    job.join(60)
    return job.id


# --- the flow plot's note on clipping says whether there is any ---------------------------
def flow_note(page):
    page.wait_for_function("() => (document.getElementById('plot-flow').layout?.annotations"
                           " || []).some(a => a.text.includes('‖g‖'))", timeout=20000)
    return page.evaluate("() => document.getElementById('plot-flow').layout.annotations"
                         ".map(a => a.text).join(' ')")


def test_the_flow_note_says_no_clipping_when_there_is_none_and_sits_below_the_legend(
        page, server):
    open_lab(page, server)
    note = flow_note(page)
    assert "(no clipping)" in note and "clip factor" not in note, note
    # the note's box lies below every legend entry (the legend sits above the plot)
    boxes = page.evaluate("""() => {
        const plot = document.getElementById('plot-flow');
        const note = plot.querySelector('.annotation').getBoundingClientRect();
        const legend = plot.querySelector('.legend').getBoundingClientRect();
        return [note.top, legend.bottom]; }""")
    assert boxes[0] >= boxes[1], boxes
    page.goto("about:blank")  # a fresh load of the page with clipping set
    open_lab(page, server, SMALL + "&clip=0.001")
    note = flow_note(page)
    assert "global ‖g‖ before clipping" in note and "clip factor" in note, note


# --- step axes follow the run to its last step --------------------------------------------
def test_the_step_axes_follow_the_run_to_its_last_step(page, server):
    """The first frame has one step (the axis spans half a step either side of it); the
    axes must still widen as the run goes, to its last step."""
    for attempt in range(3):  # the first frame is sometimes throttled away: try a few runs
        page.goto("about:blank")
        open_lab(page, server, "depth=4&width=8&steps=30&batch_size=8")
        if attempt:  # Reset shows step 0 alone and waits; Play then runs to the end
            page.wait_for_function("() => window.backproplab.state.status === 'done'",
                                   timeout=30000)
            page.click("#reset")
            page.wait_for_timeout(300)
            page.click("#play")
        page.wait_for_function("() => window.backproplab.state.status === 'done'",
                               timeout=30000)
        page.wait_for_timeout(400)  # the last throttled redraw
        last = page.evaluate("() => window.backproplab.state.latest.step")
        for plot in ("plot-loss", "plot-heatmap"):
            shown = page.evaluate(f"() => document.getElementById('{plot}')"
                                  "._fullLayout.xaxis.range")
            assert shown[0] <= 0 and shown[1] >= last, (attempt, plot, shown, last)
