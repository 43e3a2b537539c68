"""Standalone interactive HTML reports that open offline by double-click, and the
phase-diagram figure of `backproplab sweep`.

plotly.js (4.8 MB) is what weighs: a page carries it gzip-compressed (level 9) and
base64-encoded, and unpacks it with the browser's DecompressionStream before it draws
(about 2 MB a file); or it refers to one shared plotly.min.js written beside the
reports (`plotly_js="directory"`, a few tens of kB a file); or inlines it as it is
(`"inline"`, for a browser without DecompressionStream)."""

from __future__ import annotations

import base64
import functools
import gzip
import html
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

PLOTLY_JS_MODES = ("embed", "directory", "inline")
PLOTLY_JS_FILE = "plotly.min.js"  # the shared copy's name, beside the reports
SCHEMA = "backproplab.run/1"  # the run records this module reads


class RecordError(ValueError):
    """A record this module cannot make a report of, said in words."""


COLORS = {"blue": "#0072B2", "orange": "#E69F00", "green": "#009E73",
          "vermillion": "#D55E00", "sky": "#56B4E9", "black": "#000000"}


_LN_FLOAT_MAX = math.log(sys.float_info.max)


def _finite(v: Any) -> float | None:
    """Plottable value: finite float, else None (a visible gap)."""
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _layout(fig: go.Figure, title: str, **axes: Any) -> go.Figure:
    fig.update_layout(title=title, template="plotly_white", height=380,
                      margin={"l": 60, "r": 20, "t": 50, "b": 45}, **axes)
    return fig


def flow_figure(record: dict) -> go.Figure:
    step = record["steps"][-1]
    layers = step["layers"]
    x = [layer["index"] for layer in layers]
    fig = go.Figure()
    fig.add_scatter(x=x, y=[_finite(layer["delta_norm"]) for layer in layers],
                    name="‖δ(l)‖", line={"color": COLORS["blue"]}, connectgaps=False)
    fig.add_scatter(x=x, y=[_finite(layer.get("grad_w_norm")) for layer in layers],
                    name="‖∇W(l)‖", line={"color": COLORS["orange"]}, connectgaps=False)
    theory = record.get("theory") or {}
    profile = theory.get("delta_norm2_profile")
    hidden = [layer for layer in layers if layer.get("kind") != "output"]
    anchor = _finite(hidden[-1]["delta_norm"]) if hidden else None
    if profile and anchor:
        fig.add_scatter(x=[layer["index"] for layer in hidden],
                        y=[_finite(math.sqrt(p) * anchor) if _finite(p) is not None else None
                           for p in profile],
                        name="‖δ(l)‖ theory", line={"color": COLORS["blue"], "dash": "dash"})
    band = seed_band(record) if anchor else None
    if band is not None:  # drawn through the measured ‖δ(L)‖, as the theory line is
        ratio, xs = band["ln_ratio_to_last"], [layer["index"] for layer in hidden]

        def through(q: list) -> list:  # e^v beyond float's range: a gap, as ∞ is
            return [_finite(anchor * math.exp(v)) if _finite(v) is not None
                    and v < _LN_FLOAT_MAX else None for v in q]

        n = len(band["seeds"])
        fig.add_scatter(x=xs, y=through(ratio["q90"]), mode="lines", hoverinfo="skip",
                        line={"width": 0, "color": COLORS["green"]}, showlegend=False,
                        name="seed spread top")
        fig.add_scatter(x=xs, y=through(ratio["q10"]), mode="lines", fill="tonexty",
                        line={"width": 0, "color": COLORS["green"]},
                        fillcolor="rgba(0,158,115,0.16)",
                        name=f"spread of {n} seeds at init (10–90%)")
    # global-norm clipping scales every gradient by one factor: the norms after it too
    factor = _finite(step.get("clip_factor"))
    if factor is not None and factor < 1:
        fig.add_scatter(x=x, y=[_finite(g * factor) if (g := _finite(
                            layer.get("grad_w_norm"))) is not None else None
                            for layer in layers],
                        name=f"‖∇W(l)‖ after clipping (× {factor:.3g})",
                        line={"color": COLORS["orange"], "dash": "dot"}, connectgaps=False)
    bad = [layer["index"] for layer in layers if _finite(layer["delta_norm"]) is None]
    if bad:
        fig.add_scatter(x=bad, y=[1.0] * len(bad), mode="markers", name="overflow (NaN/∞)",
                        marker={"symbol": "x", "size": 10, "color": COLORS["vermillion"]})
    notes = clipping_notes(record.get("config") or {}, step)
    return _layout(fig, f"Gradient flow at step {step['step']}"
                   + (f"<br><sub>{html.escape('; '.join(notes))}</sub>" if notes else ""),
                   yaxis_type="log", xaxis_title="layer", yaxis_title="norm")


def seed_band(record: dict) -> dict | None:
    """The Lab's band for a Lab run's record: ‖δ(l)‖/‖δ(L)‖ at initialization over an
    ensemble of seeds of the same network (engines.ensemble, as many seeds as its
    limits allow, cached); None for a watched model, a config it cannot read or a
    network beyond those limits."""
    from .engines.ensemble import auto_seeds, cached_seed_spread, within_limits
    from .model.spec import RunSpec

    config = record.get("config") or {}
    if config.get("source") is not None:  # a watched model: no network of ours
        return None
    try:
        spec = RunSpec.from_dict(config)
        seeds = auto_seeds(spec)
    except (TypeError, ValueError, KeyError):
        return None
    return cached_seed_spread(spec, seeds) if within_limits(spec, seeds) else None


def clipping_notes(config: dict, step: dict) -> list[str]:
    """What the Lab's flow view says under its plot: the global gradient norm (before
    clipping, with the factor applied) and δ capping."""
    notes = []
    norm = _finite(step.get("grad_norm"))
    if norm is not None:
        factor = _finite(step.get("clip_factor"))
        notes.append(f"global ‖g‖ before clipping {norm:.3g}"
                     + (f", clip factor {factor:.3g}" if factor is not None else "")
                     if config.get("clip") is not None
                     else f"global ‖g‖ = {norm:.3g} (no clipping)")
    if config.get("delta_clip"):
        notes.append(f"δ(l) capped at ±{config['delta_clip']:.3g} per element")
    return notes


def heatmap_figure(record: dict) -> go.Figure:
    steps = record["steps"]
    depth = len(steps[-1]["layers"])
    z = [[(math.log10(v) if i < len(s["layers"]) and
           (v := _finite(s["layers"][i]["delta_norm"])) else None)
          for s in steps] for i in range(depth)]
    fig = go.Figure(go.Heatmap(z=z, x=[s["step"] for s in steps], y=list(range(depth)),
                               colorscale="Cividis", colorbar={"title": "log₁₀‖δ‖"}))
    return _layout(fig, "Flow over time: log₁₀ ‖δ(l)‖", xaxis_title="step",
                   yaxis_title="layer")


def activation_figure(record: dict) -> go.Figure:
    layers = record["steps"][-1]["layers"]
    x = [layer["index"] for layer in layers]
    fig = go.Figure()
    fig.add_scatter(x=x, y=[_finite(layer.get("saturated_frac")) for layer in layers],
                    name="saturated fraction", line={"color": COLORS["vermillion"]})
    fig.add_scatter(x=x, y=[_finite(layer.get("dead_frac")) for layer in layers],
                    name="dead units", line={"color": COLORS["black"], "dash": "dot"})
    fig.add_scatter(x=x, y=[_finite(layer.get("a_std")) for layer in layers], name="std a(l)",
                    line={"color": COLORS["sky"]}, yaxis="y2")
    # fractions on [0, 1]; std a(l) on its own right axis from 0; the legend below the
    # plot, where it covers no label
    return _layout(fig, "Activations", xaxis_title="layer",
                   yaxis={"title": "fraction of units", "range": [0, 1.02]},
                   yaxis2={"overlaying": "y", "side": "right", "title": "std a(l)",
                           "rangemode": "tozero", "showgrid": False},
                   legend={"orientation": "h", "y": -0.25, "x": 0})


def loss_figure(record: dict) -> go.Figure:
    steps = record["steps"]
    x = [s["step"] for s in steps]
    fig = go.Figure()
    fig.add_scatter(x=x, y=[_finite(s["loss"]) for s in steps], name="loss",
                    line={"color": COLORS["blue"]})
    if any(s.get("accuracy") is not None for s in steps):
        fig.add_scatter(x=x, y=[_finite(s.get("accuracy")) for s in steps], name="accuracy",
                        yaxis="y2", line={"color": COLORS["green"], "dash": "dot"})
    return _layout(fig, "Loss and accuracy", xaxis_title="step", yaxis_type="log",
                   yaxis2={"overlaying": "y", "side": "right", "range": [0, 1]})


def spectrum_figure(record: dict) -> go.Figure | None:
    with_sv = [s for s in record["steps"] if s.get("jacobian_sv")]
    if not with_sv:
        return None
    step = with_sv[-1]
    lam = [v * v for v in step["jacobian_sv"] if _finite(v) and v > 0]
    fig = go.Figure(go.Histogram(x=[math.log10(v) for v in lam], nbinsx=40, name="λ = σ²",
                                 marker={"color": COLORS["sky"]}))
    jac = (record.get("theory") or {}).get("jacobian") or {}
    if _finite(jac.get("mean")) and jac["mean"] > 0:
        fig.add_vline(x=math.log10(jac["mean"]), line_dash="dash",
                      line_color=COLORS["orange"], annotation_text="predicted mean")
    if lam:
        fig.add_vline(x=math.log10(sum(lam) / len(lam)), line_color=COLORS["blue"],
                      annotation_text="measured mean")
    return _layout(fig, f"Jacobian spectrum at step {step['step']}", xaxis_title="log₁₀ λ")


def phase_figure(result: dict) -> go.Figure:
    a = result["analytic"]
    z = [[math.log10(v) if _finite(v) and v > 0 else None for v in row] for row in a["chi1"]]
    fig = go.Figure(go.Heatmap(x=a["sigma_w2"], y=a["sigma_b2"], z=z, zmid=0,
                               colorscale="RdBu", reversescale=True,
                               colorbar={"title": "log₁₀ χ₁"}))
    line = [p for p in a["critical_line"] if _finite(p["sigma_w2"])]
    fig.add_scatter(x=[p["sigma_w2"] for p in line], y=[p["sigma_b2"] for p in line],
                    mode="lines", name="χ₁ = 1", line={"color": "black", "width": 3})
    if "measured" in result:
        m = result["measured"]
        fig.add_contour(x=m["sigma_w2"], y=m["sigma_b2"], z=m["measured_chi1"],
                        contours={"start": 1, "end": 1, "size": 1, "coloring": "none"},
                        line={"color": COLORS["orange"], "dash": "dash", "width": 3},
                        name="measured χ₁ = 1", showscale=False)
    return _layout(fig, f"Phase diagram: {a['activation']}, depth {a['depth']}",
                   xaxis_title="σ_w²", yaxis_title="σ_b²")


def _text(value) -> str:
    """A value as a reader writes it: no Python reprs (None, False, {'k': …})."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "; ".join(f"{k} {_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value) or "—"
    return str(value)


def _rows(table: dict) -> str:
    return "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_text(v))}</td></tr>"
                   for k, v in table.items())


def check_record(record: Any) -> None:
    """Raise RecordError, in words, unless `record` is a run record this module can
    draw: {schema: backproplab.run/1, steps: [{step, layers: [{index, delta_norm}]}]}."""
    if not isinstance(record, dict):
        raise RecordError(f"not a run record: the file holds a JSON {type(record).__name__}, "
                          f"not an object {{schema, config, environment, theory, steps}}")
    schema = record.get("schema")
    if schema != SCHEMA:
        found = "no schema field" if schema is None else f"schema {schema!r}"
        raise RecordError(f"not a run record this version reads: {found} (expected "
                          f"{SCHEMA!r}, as `backproplab run`, the Lab's Export and "
                          f"backproplab.watch write)")
    steps = record.get("steps")
    if not isinstance(steps, list) or not steps:
        raise RecordError("the record has no steps: nothing to draw")
    for k, step in enumerate(steps):
        layers = step.get("layers") if isinstance(step, dict) else None
        if not isinstance(layers, list) or not layers:
            raise RecordError(f"step {k} of the record has no layers")
        for i, layer in enumerate(layers):
            missing = [key for key in ("index", "delta_norm")
                       if not isinstance(layer, dict) or key not in layer]
            if missing:
                raise RecordError(f"step {k}, layer {i} lacks {', '.join(missing)}")


@functools.lru_cache(maxsize=1)
def plotly_js() -> str:
    """The installed plotly package's plotly.min.js (no CDN, no network)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


@functools.lru_cache(maxsize=1)
def plotly_js_gzip_base64() -> str:
    """plotly.min.js gzip-compressed at level 9 and base64-encoded: what a page embeds.
    Made once a process (about 0.2 s)."""
    packed = gzip.compress(plotly_js().encode(), compresslevel=9, mtime=0)
    return base64.b64encode(packed).decode("ascii")


def figure_div(fig: go.Figure | dict, key: str) -> str:
    """A figure's div and its JSON (drawn by the page's loader once plotly.js is in).
    `<` is written \u003c so that no string in the figure can end the script element."""
    spec = pio.to_json(fig, validate=False).replace("<", "\\u003c")
    return (f'<div class="figure" id="{key}"></div>'
            f'<script type="application/json" data-figure="{key}">{spec}</script>')


# draws every figure; `fail` puts a sentence at the top of the page when it cannot
_DRAW = """
function bplFail(message) {
  var p = document.createElement('p');
  p.className = 'report-error'; p.setAttribute('role', 'alert'); p.textContent = message;
  document.body.insertBefore(p, document.body.firstChild);
}
function bplDraw() {
  var specs = document.querySelectorAll('script[data-figure]');
  for (var i = 0; i < specs.length; i++) {
    var fig = JSON.parse(specs[i].textContent);
    Plotly.newPlot(specs[i].getAttribute('data-figure'), fig.data, fig.layout || {},
                   {responsive: true, displaylogo: false});
  }
  document.documentElement.setAttribute('data-figures', 'drawn');
}
"""

_UNPACK = """
(function () {
  if (typeof DecompressionStream === 'undefined') {
    bplFail('This browser cannot unpack the plotly.js embedded in this report (it lacks '
      + 'DecompressionStream: Chrome or Edge 80+, Firefox 113+ and Safari 16.4+ have it), '
      + 'so the figures are not drawn; the tables are complete. Open the report in a newer '
      + 'browser, or make it again with: backproplab report RUN --plotly-js inline');
    return;
  }
  var text = document.getElementById('plotly-js-gzip').textContent;
  var bytes = Uint8Array.from(atob(text), function (c) { return c.charCodeAt(0); });
  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  new Response(stream).text().then(function (source) {
    var script = document.createElement('script');
    script.textContent = source;
    document.head.appendChild(script);
    bplDraw();
  }).catch(function (e) { bplFail('The embedded plotly.js could not be unpacked: ' + e); });
})();
"""


def plotly_scripts(plotly_js_mode: str = "embed") -> str:
    """The scripts at the end of a page that bring plotly.js in and draw the figures."""
    if plotly_js_mode == "embed":
        return (f'<script type="application/octet-stream" id="plotly-js-gzip">'
                f"{plotly_js_gzip_base64()}</script><script>{_DRAW}{_UNPACK}</script>")
    if plotly_js_mode == "directory":
        missing = (f"bplFail('{PLOTLY_JS_FILE} was not found beside this report: the figures "
                   f"are not drawn. Keep the file in the same folder as the report, or make "
                   f"the report with --plotly-js embed.')")
        return (f"<script>{_DRAW}</script><script src=\"{PLOTLY_JS_FILE}\" "
                f"onload=\"bplDraw()\" onerror=\"{html.escape(missing)}\"></script>")
    if plotly_js_mode == "inline":
        return f"<script>{plotly_js()}</script><script>{_DRAW}bplDraw();</script>"
    raise ValueError(f"unknown plotly_js mode {plotly_js_mode!r} "
                     f"(known: {', '.join(PLOTLY_JS_MODES)})")


PAGE_STYLE = """body{font-family:"DejaVu Sans",sans-serif;margin:1.5rem;color:#1d1d1f}
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.2rem .5rem;
text-align:left;font-size:.9rem}.grid{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
.report-error{background:#fdecea;border:1px solid #D55E00;padding:.5rem;font-weight:bold}"""


def page_html(title: str, body: str, plotly_js_mode: str = "embed", style: str = "") -> str:
    """A whole page: `body` (with figure_div()s in it), then plotly.js and the drawing."""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}{style}</style></head>"
            f"<body>{body}{plotly_scripts(plotly_js_mode)}</body></html>")


def write_page(page: str, path: str | Path, plotly_js_mode: str = "embed") -> list[Path]:
    """Write the page; for "directory", also the shared plotly.min.js beside it (once:
    an up-to-date copy is kept). Returns the files written."""
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    written = [path]
    if plotly_js_mode == "directory":
        shared = path.parent / PLOTLY_JS_FILE
        source = plotly_js_path()
        if not shared.exists() or shared.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, shared)
            written.append(shared)
    return written


def plotly_js_path() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / PLOTLY_JS_FILE


THEORY_ROWS = {"q_star": "q* (fixed point of the length map)",
               "chi1": "χ₁ (gain of ‖δ‖² per layer)",
               "xi_grad": "ξ (depth scale of the gradients, layers)",
               "critical_sigma_w2": "critical σ_w² (χ₁ = 1)",
               "applies": "theory applies", "notes": "notes"}


def report_figures(record: dict) -> list[go.Figure]:
    figures = [flow_figure(record), heatmap_figure(record), activation_figure(record),
               loss_figure(record)]
    spectrum = spectrum_figure(record)
    if spectrum is not None:
        figures.append(spectrum)
    return figures


def report_html(record: dict, plotly_js_mode: str = "embed") -> str:
    """One self-contained HTML page: config, theory and every figure. Raises
    RecordError for a record it cannot read."""
    check_record(record)
    figures = "".join(figure_div(fig, f"figure-{i}")
                      for i, fig in enumerate(report_figures(record)))
    config_rows = _rows(record.get("config") or {})
    theory = record.get("theory") or {}
    theory_rows = _rows({label: theory.get(key) for key, label in THEORY_ROWS.items()})
    env = html.escape(_text(record.get("environment")))
    body = f"""<h1>backproplab run report</h1>
<p>{len(record["steps"])} recorded steps. Environment: {env}</p>
<div class="grid"><div><h2>Config</h2><table>{config_rows}</table></div>
<div><h2>Mean-field theory</h2><table>{theory_rows}</table></div></div>
{figures}"""
    return page_html("backproplab report", body, plotly_js_mode)


def write_report(record: dict, path: str | Path, plotly_js_mode: str = "embed") -> list[Path]:
    return write_page(report_html(record, plotly_js_mode), path, plotly_js_mode)


# --- runs compared side by side -----------------------------------------------------
RUN_COLORS = [COLORS[k] for k in ("blue", "orange", "green", "vermillion", "sky", "black")] \
    + ["#CC79A7", "#F0E442"]


def run_label(run: dict) -> str:
    """A run's name, or its id when it has none."""
    return run.get("name") or run["id"]


def compare_flow_figure(comparison: dict) -> go.Figure:
    """‖δ(l)‖ per layer at each run's last recorded step, overlaid."""
    fig = go.Figure()
    for i, run in enumerate(comparison["runs"]):
        last = run.get("last")
        if not last:
            continue
        fig.add_scatter(x=last["index"], y=[_finite(v) for v in last["delta_norm"]],
                        name=f"{run_label(run)} (step {last['step']})", connectgaps=False,
                        line={"color": RUN_COLORS[i % len(RUN_COLORS)]})
    return _layout(fig, "Gradient flow at the last step: ‖δ(l)‖", yaxis_type="log",
                   xaxis_title="layer", yaxis_title="‖δ(l)‖")


def compare_loss_figure(comparison: dict) -> go.Figure:
    fig = go.Figure()
    for i, run in enumerate(comparison["runs"]):
        series = run["series"]
        fig.add_scatter(x=series["step"], y=[_finite(v) for v in series["loss"]],
                        name=run_label(run), connectgaps=False,
                        line={"color": RUN_COLORS[i % len(RUN_COLORS)]})
    return _layout(fig, "Loss", yaxis_type="log", xaxis_title="step", yaxis_title="loss")


def compare_heatmap_figure(run: dict) -> go.Figure:
    series = run["series"]
    depth = max((len(d) for d in series["delta_norm"]), default=0)
    z = [[(math.log10(v) if (v := _finite(d[i] if i < len(d) else None)) else None)
          for d in series["delta_norm"]] for i in range(depth)]
    fig = go.Figure(go.Heatmap(z=z, x=series["step"], y=list(range(depth)),
                               colorscale="Cividis", colorbar={"title": "log₁₀‖δ‖"}))
    return _layout(fig, f"{run_label(run)}: log₁₀ ‖δ(l)‖", xaxis_title="step",
                   yaxis_title="layer")


def compare_report_html(comparison: dict, plotly_js_mode: str = "embed") -> str:
    """One self-contained page: the runs, their config side by side (differing fields
    marked), the flow profiles and losses overlaid, a heatmap per run."""
    runs = comparison["runs"]
    figures = [compare_flow_figure(comparison), compare_loss_figure(comparison)] + \
        [compare_heatmap_figure(run) for run in runs]
    parts = [figure_div(fig, f"figure-{i}") for i, fig in enumerate(figures)]
    head = "".join(f"<th>{html.escape(run_label(run))}</th>" for run in runs)
    rows = "".join(
        f'<tr class="{"differs" if f["differs"] else "same"}"><th>{html.escape(f["field"])}'
        f'{" (differs)" if f["differs"] else ""}</th>'
        + "".join(f"<td>{html.escape(_text(v))}</td>" for v in f["values"]) + "</tr>"
        for f in comparison["fields"])
    summary = "".join(
        f"<tr><th>{html.escape(run_label(run))}</th><td>{html.escape(run['id'])}</td>"
        f"<td>{html.escape(run['source'])}</td><td>{html.escape(run['status'])}</td>"
        f"<td>{run['steps']}</td>"
        f"<td>{html.escape(_text(run['summary'].get('final_loss')))}</td>"
        f"</tr>" for run in runs)
    body = f"""<h1>backproplab: {len(runs)} runs compared</h1>
<table><tr><th>run</th><th>id</th><th>source</th><th>status</th><th>steps</th>
<th>final loss</th></tr>{summary}</table>
<h2>Config</h2><table><tr><th>field</th>{head}</tr>{rows}</table>
<div class="grid">{"".join(f"<div>{p}</div>" for p in parts)}</div>"""
    return page_html("backproplab comparison", body, plotly_js_mode,
                     style="tr.differs{background:#fff3cd;font-weight:bold}")
