"""Render the main views to PNG with Debian's Chromium: docs/screenshots/*.png.

    .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
SHOTS = [
    ("lab", "activation=sigmoid&depth=30&record.jacobian_every=10", None),
    ("gradient-flow", "activation=sigmoid&depth=30", "#view-flow"),
    ("critical-tanh", "activation=tanh&depth=50&init=normal&sigma_w=1.327&sigma_b=0.2236"
                      "&record.jacobian_every=10", "#view-flow"),
    ("heatmap", "activation=tanh&depth=40&init=normal&sigma_w=1.6&steps=120", "#view-heatmap"),
    ("phase", "activation=tanh&depth=50", "#view-phase"),
    ("spectrum", "activation=tanh&depth=30&init=orthogonal&record.jacobian_every=5",
     "#view-spectrum"),
    ("stepper", "activation=tanh&depth=3", "#view-stepper"),
    ("overflow", "activation=tanh&depth=300&init=normal&sigma_w=20", None),
]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "backproplab.cli", "serve", "--port",
                             str(port)], env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(url + "/api/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium")
                                        or "/usr/bin/chromium", args=["--no-sandbox"])
            for name, hash_, selector in SHOTS:
                page = browser.new_page(viewport={"width": 1440, "height": 1000})
                page.goto(f"{url}/#{hash_}")
                page.wait_for_function("() => (document.getElementById('plot-flow').data"
                                       " || []).length > 0", timeout=20000)
                page.wait_for_timeout(2500)
                if name == "stepper":
                    for _ in range(5):
                        page.click("#stepper-next")
                target = page.locator(selector) if selector else page
                target.screenshot(path=str(OUT / f"{name}.png"))
                print(f"wrote {OUT / f'{name}.png'}")
                page.close()
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
