"""Plotly figures as plain dicts ({"data", "layout"}): built without importing plotly,
drawn by plotly.js in the browser and by plotly's offline writer in reports."""

from __future__ import annotations

import math
from typing import Any

COLORS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#000000",
          "#F0E442"]


# plotly.js has no named templates: the look is spelled out (white, light grid)
STYLE = {"paper_bgcolor": "white", "plot_bgcolor": "white",
         "font": {"family": "system-ui, sans-serif", "size": 12, "color": "#222"}}
AXIS = {"gridcolor": "#e6e6e6", "zerolinecolor": "#bbb", "linecolor": "#999",
        "automargin": True}


def finite(v: Any) -> float | None:
    """A plottable value: a finite float, else None (a visible gap)."""
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def panels(title: str, parts: list[dict[str, Any]], height: int = 380) -> dict[str, Any]:
    """Side-by-side panels: each part {title, traces, x, y, xlog?, ylog?, xaxis?, yaxis?}
    (the last two: extra axis settings such as a range)."""
    n = len(parts)
    gap = 0.08 if n > 1 else 0.0
    width = (1.0 - gap * (n - 1)) / n
    data, layout = [], {"title": {"text": title}, **STYLE,
                        "height": height, "margin": {"l": 60, "r": 20, "t": 70, "b": 100},
                        "annotations": [], "legend": {"orientation": "h", "y": -0.3}}
    for k, part in enumerate(parts):
        suffix = "" if k == 0 else str(k + 1)
        lo = k * (width + gap)
        layout[f"xaxis{suffix}"] = {**AXIS, "domain": [lo, lo + width], "anchor": f"y{suffix}",
                                    "title": {"text": part["x"]},
                                    **({"type": "log"} if part.get("xlog") else {}),
                                    **part.get("xaxis", {})}
        layout[f"yaxis{suffix}"] = {**AXIS, "anchor": f"x{suffix}",
                                    "title": {"text": part["y"]},
                                    **({"type": "log"} if part.get("ylog") else {}),
                                    **part.get("yaxis", {})}
        layout["annotations"].append({"text": part["title"], "x": lo + width / 2, "y": 1.02,
                                      "xref": "paper", "yref": "paper", "showarrow": False,
                                      "xanchor": "center", "yanchor": "bottom"})
        for trace in part["traces"]:
            data.append({**trace, "xaxis": f"x{suffix}", "yaxis": f"y{suffix}"})
    return {"data": data, "layout": layout}


def histogram_curves(hists: list[dict], name: str, legend: bool = True
                     ) -> list[dict[str, Any]]:
    """One line per layer through its histogram's bin centres (Glorot's Fig. 6 style),
    normalized to a density; one colour per layer (in the legend once: `legend`)."""
    traces = []
    for i, h in enumerate(hists):
        counts = h["counts"]
        n = len(counts)
        lo, hi = h["lo"], h["hi"]
        if not (finite(lo) is not None and finite(hi) is not None and hi > lo):
            continue
        width = (hi - lo) / n
        total = max(sum(counts), 1)
        traces.append({"type": "scatter", "mode": "lines", "name": f"layer {i + 1}",
                       "legendgroup": f"layer {i + 1}", "showlegend": legend,
                       "hovertemplate": f"{name}, layer {i + 1}<br>%{{x:.3g}}: %{{y:.3g}}"
                                        "<extra></extra>",
                       "x": [lo + (k + 0.5) * width for k in range(n)],
                       "y": [c / (total * width) for c in counts],
                       "line": {"color": COLORS[i % len(COLORS)]}})
    return traces
