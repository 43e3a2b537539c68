"""The Cost page's memory view in Debian's Chromium: the slopes, peaks and microbatch
differences shown are the API's, on the tape's, torch's and JAX's meters; the plot's
axis titles are readable; the memory view fills while the compiled view still
measures; the flow view shows the clip factor of the clipping preset."""

import re
import threading

import pytest

from conftest import strict_loads

pytestmark = pytest.mark.browser
NET = "depth=10&width=8&batch_size=4&dtype=float64&checkpoint=sqrt"


SERVER_SETTINGS = {"max_sessions": 64, "frame_rate": 30}  # for conftest's server


PAGE_OPTIONS = {"console_errors": False}  # for conftest's page


UNITS = {"GB": 1e9, "MB": 1e6, "kB": 1e3, "bytes": 1}


def shown_bytes(text: str) -> float:
    value, unit = text.split(" ")
    return float(value) * UNITS[unit]


def slope_in(text: str) -> float:
    return float(re.search(r"slope (-?[\d.]+(?:e[-+]\d+)?)", text).group(1))


def test_memory_view_shows_the_measured_numbers(page, server):
    with page.expect_response(lambda r: "/api/memory" in r.url, timeout=180_000) as got:
        page.goto(f"{server.url}/#page=cost&{NET}")
    report = strict_loads(got.value.text())
    page.wait_for_selector("#view-memory[data-ready]", timeout=180_000)
    for name in ("none", "sqrt", "every"):
        row = page.locator(f"#memory-strategies tr[data-strategy={name}]")
        s = report["strategies"][name]
        assert float(row.locator("td[data-key=slope]").text_content()) == \
            pytest.approx(s["slope"], rel=5e-3)
        for meter in ("torch", "jax"):
            assert float(row.locator(f"td[data-key={meter}-slope]").text_content()) == \
                pytest.approx(s[meter]["slope"], rel=5e-3)
            assert shown_bytes(row.locator(f"td[data-key={meter}-peak]").text_content()) == \
                pytest.approx(s[meter]["peak_bytes"][-1], rel=5e-3)
        shown_extra = row.locator("td[data-key=jax-extra]").text_content()
        assert float(shown_extra.split(" ")[0]) == pytest.approx(
            s["jax"]["extra_forward"][-1], rel=5e-3, abs=1e-9)
        extra = row.locator("td[data-key=extra]").text_content()
        assert float(extra.split(" ")[0]) == pytest.approx(s["extra_forward"][-1],
                                                           rel=5e-3, abs=1e-9)
    for r in report["microbatches"]:
        row = page.locator(f"#memory-microbatches tr[data-k='{r['k']}']")
        shown = row.locator("td[data-key=diff]").text_content().replace("−", "-")
        assert float(shown) == pytest.approx(r["max_rel_diff"], rel=5e-3, abs=1e-30)
        assert shown_bytes(row.locator("td[data-key=peak]").text_content()) == \
            pytest.approx(r["peak_bytes"], rel=5e-3)
        assert shown_bytes(row.locator("td[data-key=jax-peak]").text_content()) == \
            pytest.approx(r["jax_peak_bytes"], rel=5e-3)
        jax_diff = row.locator("td[data-key=jax-diff]").text_content().replace("−", "-")
        assert float(jax_diff) == pytest.approx(r["jax_max_rel_diff"], rel=5e-3, abs=1e-30)
    # the plot: what it draws is the report; its axes say what they are
    drawn = page.evaluate("""() => document.getElementById('plot-memory').data
        .map((t) => ({ name: t.name, y: t.y }))""")
    tape_none = next(t for t in drawn if t["name"].startswith("no checkpointing (tape)"))
    assert tape_none["y"] == report["strategies"]["none"]["peak_bytes"]
    assert slope_in(tape_none["name"]) == pytest.approx(report["strategies"]["none"]["slope"],
                                                        rel=5e-3)
    jax_sqrt = next(t for t in drawn if t["name"].startswith("√L segments (JAX)"))
    assert jax_sqrt["y"] == report["strategies"]["sqrt"]["jax"]["peak_bytes"]
    assert slope_in(jax_sqrt["name"]) == pytest.approx(
        report["strategies"]["sqrt"]["jax"]["slope"], rel=5e-3)
    assert "JAX (residuals of jax.vjp" in page.locator("#view-memory .memory-status").first \
        .text_content()
    # this network's point on each meter
    for meter, key in (("tape", "peak_bytes"), ("torch", "torch_peak_bytes"),
                       ("JAX", "jax_peak_bytes")):
        star = next(t for t in drawn if t["name"] == f"this network ({meter})")
        assert star["y"] == [report["current"][key]]
    for title in ("depth L (hidden layers, log scale)", "peak bytes saved for backward (log)"):
        box = page.locator(f"#plot-memory text:has-text('{title}')").bounding_box()
        plot = page.locator("#plot-memory").bounding_box()
        # long side: the text's length; short side: a readable glyph height (y: rotated)
        assert max(box["width"], box["height"]) > 100 and min(box["width"], box["height"]) >= 9
        assert plot["x"] <= box["x"] and box["x"] + box["width"] <= plot["x"] + plot["width"]
        assert plot["y"] <= box["y"] and box["y"] + box["height"] <= plot["y"] + plot["height"]
    summary = page.locator("#memory-summary").text_content()
    powers = [float(p) for p in re.findall(r"L\^(-?[\d.]+)", summary)]
    assert powers == pytest.approx([report["strategies"][k]["slope"]
                                    for k in ("none", "sqrt", "every")], rel=1e-2)
    # torch against the tape, as the summary says it: the report's ratio at the deepest L
    none = report["strategies"]["none"]
    ratio = float(re.search(r"torch keeps ([\d.]+) × the tape's bytes", summary).group(1))
    assert ratio == pytest.approx(none["torch"]["peak_bytes"][-1] / none["peak_bytes"][-1],
                                  rel=1e-2)
    assert not page.errors


def test_memory_view_fills_while_the_compiled_view_still_measures(page, server,
                                                                   monkeypatch):
    """A compile measurement held on the server: the memory view's request is its own,
    so its numbers are shown while the compiled view still says it is compiling."""
    from backproplab.api.routes import compile as compile_route

    release = threading.Event()
    real = compile_route.analyze

    def slow(key, check):
        release.wait(240)
        return real(key, check=check)

    monkeypatch.setattr(compile_route, "analyze", slow)
    net = "depth=7&width=6&batch_size=3&dtype=float64"  # measured by no other test
    try:
        with page.expect_response(lambda r: "/api/memory" in r.url, timeout=180_000) as got:
            page.goto(f"{server.url}/#page=cost&{net}")
        report = strict_loads(got.value.text())
        page.wait_for_selector("#view-memory[data-ready]", timeout=30_000)
        row = page.locator("#memory-strategies tr[data-strategy=none]")
        assert float(row.locator("td[data-key=slope]").text_content()) == \
            pytest.approx(report["strategies"]["none"]["slope"], rel=5e-3)
        assert float(row.locator("td[data-key=jax-slope]").text_content()) == \
            pytest.approx(report["strategies"]["none"]["jax"]["slope"], rel=5e-3)
        compiled = page.locator("#view-compiled .cost-status")
        assert compiled.text_content().startswith("compiling and timing the step")
        assert page.locator("#view-compiled").get_attribute("data-ready") is None
        assert page.locator("#view-compiled").get_attribute("aria-busy") == "true"
    finally:
        release.set()
    page.wait_for_selector("#view-compiled[data-ready]", timeout=180_000)
    assert "JAX" in page.locator("#view-compiled .cost-status").text_content()
    assert not page.errors


def test_memory_view_says_what_went_wrong(page, server):
    page.goto(f"{server.url}/#page=cost&depth=1&width=2048&batch_size=2048&steps=1")
    status = page.locator("#view-memory .memory-status").first
    status.wait_for(state="visible")
    page.wait_for_function("""() => document.querySelector('#view-memory .memory-status')
        .textContent.includes('could not')""", timeout=60_000)
    assert "too wide to measure" in status.text_content()


def test_the_clipping_preset_shows_its_clip_factor(page, server):
    page.goto(f"{server.url}/")
    page.wait_for_selector("#preset option", state="attached", timeout=30_000)
    page.select_option("#preset", label="gradient clipping (tanh σ_w = 3, clip 1)")
    page.wait_for_function("""() => { const el = document.getElementById('plot-flow');
        return el && el.layout && el.layout.annotations && el.layout.annotations.length
          && el.data.some((t) => t.name.startsWith('‖∇W(l)‖ after clipping')); }""",
                           timeout=120_000)
    note = page.evaluate("() => document.getElementById('plot-flow').layout.annotations[0].text")
    factor = float(note.split("clip factor ")[1].split(";")[0])
    assert 0 < factor < 0.01 and "global ‖g‖ before clipping" in note
