"""The HTML report of a default run (depth 20, width 128, 200 steps): bytes per file
with plotly.js inlined as it is (what a report was), embedded gzip -9 + base64, and
shared beside the reports; time to write it and, in Chromium from a file:// URL with
the network off, time until every figure is drawn. Then the seed ensemble of the
flow plot's band: seconds at the default config and at the exploding preset's.

    python benchmarks/report_size.py [--no-browser]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _timing import machine, table
from backproplab.engines import run
from backproplab.engines.ensemble import seed_spread
from backproplab.model.spec import RunSpec
from backproplab.report import plotly_js, report_html, write_report

MODES = ("inline", "embed", "directory")


def draw_seconds(paths: dict[str, Path], repeats: int = 5) -> dict[str, float]:
    """Median seconds from navigation to the page's `data-figures="drawn"`, modes
    interleaved."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    times: dict[str, list[float]] = {m: [] for m in paths}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        for _ in range(repeats):
            for mode, path in paths.items():
                context = browser.new_context(offline=True)
                page = context.new_page()
                start = time.perf_counter()
                page.goto(path.as_uri())
                page.wait_for_function("() => document.documentElement.dataset.figures"
                                       " === 'drawn'", timeout=60000)
                times[mode].append(time.perf_counter() - start)
                context.close()
        browser.close()
    return {m: statistics.median(t) for m, t in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    record = run(RunSpec())
    js = len(plotly_js().encode())
    out = Path(tempfile.mkdtemp())
    rows, paths = [], {}
    inline = len(report_html(record, "inline").encode())
    report_html(record, "embed")  # plotly.js is packed once a process (gzip -9, ~0.2 s)
    for mode in MODES:
        start = time.perf_counter()
        report_html(record, mode)
        made = time.perf_counter() - start
        (out / mode).mkdir()
        paths[mode] = out / mode / "report.html"
        write_report(record, paths[mode], mode)
        size = paths[mode].stat().st_size
        shared = js if mode == "directory" else 0
        rows.append([mode, size, shared, round(size / inline, 3), round(1e3 * made, 1)])
    drawn = {} if args.no_browser else draw_seconds(paths)
    for row in rows:
        row.append(round(1e3 * drawn[row[0]]) if drawn else "—")
    print(f"# report_size — {time.strftime('%Y-%m-%d')} — {machine()}, numpy {np.__version__}"
          f" — plotly.min.js {js} bytes")
    print(table(["plotly.js", "bytes per report", "shared file bytes", "size / inline",
                 "make ms", "drawn in Chromium ms"], rows))

    spread_rows = []
    for name, spec in (("default (tanh, 20 × 128, batch 64)", RunSpec()),
                       ("exploding preset (300 × 128, batch 64)",
                        RunSpec(depth=300, init="normal", sigma_w=3.5, steps=1))):
        for seeds in (16, 32) if name.startswith("default") else (9,):
            for dtype in ("float32", "float64"):
                one = spec.replace(dtype=dtype)
                seed_spread(one, seeds)  # warm
                times = []
                for k in range(3):
                    start = time.perf_counter()
                    seed_spread(one.replace(seed=100 + k), seeds)
                    times.append(time.perf_counter() - start)
                spread_rows.append([name, seeds, dtype, round(1e3 * min(times)),
                                    round(1e3 * statistics.median(times))])
    print()
    print(table(["network", "seeds", "dtype", "best ms", "median ms"], spread_rows))
    shutil.rmtree(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
