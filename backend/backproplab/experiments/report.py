"""An experiment's outputs: result.json, a self-contained HTML report (plotly.js
from the installed plotly package, embedded compressed as in backproplab.report: no
CDN, works offline) and one PNG per figure through kaleido where it can run (it needs
a Chromium)."""

from __future__ import annotations

import html
import os
import shutil
from pathlib import Path
from typing import Any


def _value(v: float) -> str:
    return f"{v:.4g}"


def executed_where(execution: dict[str, Any], single: str = "in a single process") -> str:
    """Where an experiment's runs ran, in the words the Experiments page uses (format.js
    executedWhere); `single` names the one process (the server's, this command's)."""
    backend = execution.get("backend")
    if backend == "in-process":
        return single
    if backend == "pool":
        n = execution.get("workers")
        return f"on a pool of {n} worker process{'' if n == 1 else 'es'}" if n \
            else "on a process pool"
    if backend == "ray":
        address = execution.get("address")
        return f"on the Ray cluster at {address}" if address else "on Ray"
    return f"on {backend}" if backend else "somewhere not recorded"


def duration(seconds: float) -> str:
    """12.3 s, 812 ms, 2 min 5 s: as format.js duration() writes it."""
    a = abs(seconds)
    if a == 0:
        return "0 s"
    if a < 0.9995:
        return f"{float(f'{seconds * 1e3:.3g}'):g} ms"
    if a < 59.95:
        return f"{float(f'{seconds:.3g}'):g} s"
    whole = round(a)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    minutes = round(a / 60)
    return f"{minutes // 60} h {minutes % 60} min"


def checks_table(checks: list[dict[str, Any]]) -> str:
    rows = []
    for c in checks:
        verdict = "PASS" if c["pass"] else "FAIL"
        rows.append(
            f"<tr class='{verdict.lower()}'><td>{html.escape(c['name'])}</td>"
            f"<td>{_value(c['published'])}</td><td>{_value(c['measured'])}</td>"
            f"<td>{html.escape(c.get('relation', '≈'))} ±{_value(c['tolerance'])}</td>"
            f"<td><b>{verdict}</b></td><td class='src'>{html.escape(c.get('source', ''))}"
            "</td></tr>")
    return ("<table><thead><tr><th>check</th><th>published</th><th>measured</th>"
            "<th>tolerance</th><th></th><th>source</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def report_html(result: dict[str, Any], plotly_js_mode: str = "embed") -> str:
    from ..report import figure_div, page_html

    figures = [figure_div(fig, f"figure-{k}") for k, fig in enumerate(result["figures"])]
    ex = result["execution"]
    title = html.escape(result["title"])
    passed = sum(c["pass"] for c in result["checks"])
    style = ("body{font:14px system-ui,sans-serif;margin:2em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
             "padding:4px 8px;text-align:left;vertical-align:top}tr.pass b{color:#007a4d}"
             "tr.fail b{color:#c0392b}td.src{font-size:12px;color:#555;max-width:40em}")
    return page_html(result["title"], (
        f"<h1>{title}</h1><p>{html.escape(result['paper'])}</p>"
        f"<p>{html.escape(result['summary'])}</p>"
        f"<p>{passed} of {len(result['checks'])} checks pass · "
        f"{'quick' if result['config']['quick'] else 'full'} size · seed "
        f"{result['config']['seed']} · {len(result['runs'])} runs, "
        f"{html.escape(executed_where(ex))}, in {duration(ex['seconds'])} · config "
        f"{result['config_hash']}</p>"
        + checks_table(result["checks"]) + "".join(figures)), plotly_js_mode, style)


def write_png(figure: dict[str, Any], path: Path) -> None:
    """One figure as a PNG through kaleido (which drives a Chromium it can find)."""
    import plotly.io as pio

    if "BROWSER_PATH" not in os.environ and shutil.which("chromium"):
        os.environ["BROWSER_PATH"] = shutil.which("chromium")  # kaleido's browser
    pio.write_image(figure, str(path), format="png", width=1000,
                    height=figure["layout"].get("height", 420), validate=False)


def write_outputs(result: dict[str, Any], out: str | Path, png: bool = True) -> list[str]:
    """DIR/result.json, DIR/report.html and DIR/figure-<k>.png; returns the paths written
    and raises nothing for a PNG that cannot be made (the reason is in the list)."""
    from ..runs.codec import encode

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    (out / "result.json").write_bytes(encode(result))
    written.append(str(out / "result.json"))
    (out / "report.html").write_text(report_html(result), encoding="utf-8")
    written.append(str(out / "report.html"))
    if png:
        for k, figure in enumerate(result["figures"], start=1):
            path = out / f"figure-{k}.png"
            try:
                write_png(figure, path)
            except Exception as exc:  # kaleido missing, or no browser for it
                written.append(f"(no PNG: {type(exc).__name__}: {exc})")
                break
            written.append(str(path))
    return written
