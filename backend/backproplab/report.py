"""Standalone interactive HTML reports (plotly.js embedded: works offline), and
the phase-diagram figure of `backproplab sweep`."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

COLORS = {"blue": "#0072B2", "orange": "#E69F00", "green": "#009E73",
          "vermillion": "#D55E00", "sky": "#56B4E9", "black": "#000000"}


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
    fig.add_scatter(x=x, y=[_finite(layer["grad_w_norm"]) for layer in layers],
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
    bad = [layer["index"] for layer in layers if _finite(layer["delta_norm"]) is None]
    if bad:
        fig.add_scatter(x=bad, y=[1.0] * len(bad), mode="markers", name="overflow (NaN/∞)",
                        marker={"symbol": "x", "size": 10, "color": COLORS["vermillion"]})
    return _layout(fig, f"Gradient flow at step {step['step']}", yaxis_type="log",
                   xaxis_title="layer", yaxis_title="norm")


def heatmap_figure(record: dict) -> go.Figure:
    steps = record["steps"]
    depth = len(steps[-1]["layers"])
    z = [[(math.log10(v) if (v := _finite(s["layers"][i]["delta_norm"])) else None)
          for s in steps] for i in range(depth)]
    fig = go.Figure(go.Heatmap(z=z, x=[s["step"] for s in steps], y=list(range(depth)),
                               colorscale="Cividis", colorbar={"title": "log₁₀‖δ‖"}))
    return _layout(fig, "Flow over time: log₁₀ ‖δ(l)‖", xaxis_title="step",
                   yaxis_title="layer")


def activation_figure(record: dict) -> go.Figure:
    layers = record["steps"][-1]["layers"]
    x = [layer["index"] for layer in layers]
    fig = go.Figure()
    fig.add_scatter(x=x, y=[_finite(layer["saturated_frac"]) for layer in layers],
                    name="saturated fraction", line={"color": COLORS["vermillion"]})
    fig.add_scatter(x=x, y=[_finite(layer["dead_frac"]) for layer in layers],
                    name="dead units", line={"color": COLORS["black"], "dash": "dot"})
    fig.add_scatter(x=x, y=[_finite(layer["a_std"]) for layer in layers], name="std a(l)",
                    line={"color": COLORS["sky"]}, yaxis="y2")
    return _layout(fig, "Activations", xaxis_title="layer", yaxis_title="fraction",
                   yaxis2={"overlaying": "y", "side": "right", "title": "std"})


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


def report_html(record: dict) -> str:
    """One self-contained HTML page: config, theory and every figure."""
    figures = [flow_figure(record), heatmap_figure(record), activation_figure(record),
               loss_figure(record)]
    spectrum = spectrum_figure(record)
    if spectrum is not None:
        figures.append(spectrum)
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0))
             for i, fig in enumerate(figures)]
    config_rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                          for k, v in (record.get("config") or {}).items())
    theory = record.get("theory") or {}
    theory_rows = "".join(
        f"<tr><th>{k}</th><td>{html.escape(str(theory.get(k)))}</td></tr>"
        for k in ("q_star", "chi1", "xi_grad", "critical_sigma_w2", "applies", "notes"))
    env = html.escape(str(record.get("environment")))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>backproplab report</title><style>
body{{font-family:"DejaVu Sans",sans-serif;margin:1.5rem;color:#1d1d1f}}
table{{border-collapse:collapse;margin:.5rem 0}}th,td{{border:1px solid #ddd;padding:.2rem .5rem;
text-align:left;font-size:.9rem}}.grid{{display:grid;grid-template-columns:1fr 1fr;gap:1rem}}
</style></head><body><h1>backproplab run report</h1>
<p>{len(record.get("steps", []))} recorded steps. Environment: {env}</p>
<div class="grid"><div><h2>Config</h2><table>{config_rows}</table></div>
<div><h2>Mean-field theory</h2><table>{theory_rows}</table></div></div>
{"".join(parts)}</body></html>"""


def write_report(record: dict, path: str | Path) -> None:
    Path(path).write_text(report_html(record), encoding="utf-8")


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


def compare_report_html(comparison: dict) -> str:
    """One self-contained page: the runs, their config side by side (differing fields
    marked), the flow profiles and losses overlaid, a heatmap per run."""
    runs = comparison["runs"]
    figures = [compare_flow_figure(comparison), compare_loss_figure(comparison)] + \
        [compare_heatmap_figure(run) for run in runs]
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0))
             for i, fig in enumerate(figures)]
    head = "".join(f"<th>{html.escape(run_label(run))}</th>" for run in runs)
    rows = "".join(
        f'<tr class="{"differs" if f["differs"] else "same"}"><th>{html.escape(f["field"])}'
        f'{" (differs)" if f["differs"] else ""}</th>'
        + "".join(f"<td>{html.escape(str(v))}</td>" for v in f["values"]) + "</tr>"
        for f in comparison["fields"])
    summary = "".join(
        f"<tr><th>{html.escape(run_label(run))}</th><td>{html.escape(run['id'])}</td>"
        f"<td>{html.escape(run['source'])}</td><td>{html.escape(run['status'])}</td>"
        f"<td>{run['steps']}</td><td>{html.escape(str(run['summary'].get('final_loss')))}</td>"
        f"</tr>" for run in runs)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>backproplab comparison</title><style>
body{{font-family:"DejaVu Sans",sans-serif;margin:1.5rem;color:#1d1d1f}}
table{{border-collapse:collapse;margin:.5rem 0}}th,td{{border:1px solid #ddd;padding:.2rem .5rem;
text-align:left;font-size:.9rem}}tr.differs{{background:#fff3cd;font-weight:bold}}
.grid{{display:grid;grid-template-columns:1fr 1fr;gap:1rem}}
</style></head><body><h1>backproplab: {len(runs)} runs compared</h1>
<table><tr><th>run</th><th>id</th><th>source</th><th>status</th><th>steps</th>
<th>final loss</th></tr>{summary}</table>
<h2>Config</h2><table><tr><th>field</th>{head}</tr>{rows}</table>
<div class="grid">{"".join(f"<div>{p}</div>" for p in parts)}</div></body></html>"""
