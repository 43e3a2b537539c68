"""The Cost page in Debian's Chromium: the compiled-vs-eager view shows the numbers
the server measured, in a table, as bars and in one sentence; errors in words."""

import httpx
import pytest

from conftest import strict_loads

pytestmark = pytest.mark.browser
NET = "depth=3&width=8&batch_size=4&dtype=float64&activation=relu"
LABELS = {"jaxpr_equations": "jaxpr equations", "hlo_before": "HLO instructions before "
          "optimization", "hlo_after": "HLO operations after optimization",
          "fusions": "fusions"}


SERVER_SETTINGS = {"max_sessions": 2, "frame_rate": 30}  # for conftest's server


PAGE_OPTIONS = {"console_errors": False}  # for conftest's page


def shown_number(text: str) -> float:
    return float(text.replace("−", "-"))


def test_compiled_view_shows_the_measured_numbers(page, server):
    with page.expect_response(lambda r: "/api/compile" in r.url, timeout=120_000) as got:
        page.goto(f"{server.url}/#page=cost&{NET}")
    received = strict_loads(got.value.text())
    page.wait_for_selector("#view-compiled[data-ready]", timeout=120_000)
    assert page.locator("nav#pages button[aria-current=page]").text_content() == "Cost"
    assert page.locator("#page-lab").is_hidden()
    # the same config asked again (the server measures once per network): the
    # deterministic counts are the page's, and every shown cell is the received value
    again = httpx.get(f"{server.url}/api/compile?{NET}", timeout=120).json()
    for key, label in LABELS.items():
        row = page.locator(f"tr[data-key={key}]")
        assert row.locator("th").text_content() == label
        cells = [int(t) for t in row.locator("td").all_text_contents()]
        assert cells == [received["forward"][key], received["step"][key]]
        assert cells == [again["forward"][key], again["step"][key]]
    for key in ("bytes_before", "bytes_after", "compile_s"):
        scale = 1e-6 if key.startswith("bytes") else 1.0
        cells = [shown_number(t) for t in
                 page.locator(f"tr[data-key={key}] td").all_text_contents()]
        for shown, part in zip(cells, ("forward", "step"), strict=True):
            assert shown == pytest.approx(received[part][key] * scale, rel=5e-3)
    bars = page.evaluate("() => { const t = document.getElementById('plot-compiled').data[0];"
                         " return {y: t.y, x: t.x}; }")
    assert bars["y"] == ["jitted (XLA)", "op by op", "PyTorch eager"]
    assert bars["x"] == [received["jit_ms"], received["op_by_op_ms"], received["torch_ms"]]
    assert received["op_by_op_ms"] > received["jit_ms"]
    assert page.locator(".cost-summary").text_content() == received["summary"]
    assert f"{received['step']['fusions']} of them fusions" in received["summary"]
    # the status names the network measured, then what measured it
    assert page.locator(".cost-status").text_content().startswith(
        f"depth 3, width 8, batch 4, relu: JAX {received['jax']} on the CPU")
    # a narrow screen: the chart goes under its table, at a readable width, and the
    # page does not scroll sideways
    page.set_viewport_size({"width": 700, "height": 900})
    page.wait_for_function("() => document.getElementById('plot-compiled')"
                           ".getBoundingClientRect().width >= 400 && document.documentElement"
                           ".scrollWidth <= document.documentElement.clientWidth")
    assert page.errors == []


def test_a_network_the_view_cannot_compile_is_explained(page, server):
    page.goto(f"{server.url}/#page=cost&engine=torch&dtype=bfloat16&depth=2&width=4")
    status = page.locator("#view-compiled .cost-status")
    page.wait_for_function("() => document.querySelector('#view-compiled .cost-status')"
                           "?.textContent.startsWith('could not')", timeout=60_000)
    assert status.text_content() == ("could not measure this network: the compiled view "
                                     "runs float32 or float64, not bfloat16")
    assert "error" in status.get_attribute("class")


def test_the_engine_control_offers_the_engines_info_lists(page, server):
    page.goto(f"{server.url}/#depth=2&width=4&steps=2")
    page.wait_for_selector("#ctl-engine option", state="attached")
    offered = page.locator("#ctl-engine option").evaluate_all("els => els.map(e => e.value)")
    listed = httpx.get(f"{server.url}/api/info").json()["engines"]
    assert offered == listed and "jax" in listed
