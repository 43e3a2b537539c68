"""Shared fixtures: an app for TestClient, and a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from contextlib import contextmanager

import pytest
import uvicorn

# tests keep nothing unless they ask for a folder (never the user's own run store)
os.environ.setdefault("BACKPROPLAB_DATA_DIR", ":memory:")

from backproplab.api.app import create_app  # noqa: E402
from backproplab.settings import Settings  # noqa: E402


def strict_loads(text: str):
    """JSON.parse's strictness: bare NaN/Infinity tokens are errors."""
    def reject(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=reject)


class ServerThread:
    def __init__(self, settings: Settings, port: int = 0):
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning",
                                ws_max_size=settings.max_message_bytes, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/api/live"
        return self

    def __exit__(self, *exc):
        # uvicorn finishes the requests in flight first (a compile or memory measurement
        # can take a while on a loaded machine): a thread left running into the
        # interpreter's exit would abort it from inside XLA or torch
        self.app.state.stop_measuring()
        self.server.should_exit = True
        self.thread.join(180)
        if self.thread.is_alive():
            raise RuntimeError("the test server did not stop within 180 s")

    @property
    def manager(self):
        return self.app.state.manager


@pytest.fixture
def live_server():
    with ServerThread(Settings(frame_rate=50)) as server:
        yield server


def make_server(port: int = 0, **settings):
    return ServerThread(Settings(**settings), port=port)


@pytest.fixture(scope="module")
def server(request):
    """A server on 127.0.0.1 for the module, with the module's SERVER_SETTINGS (e.g.
    {"max_sessions": 64, "frame_rate": 30}); a module may define its own instead."""
    with make_server(**getattr(request.module, "SERVER_SETTINGS", {})) as s:
        yield s


# --- Chromium (Debian's, driven by Python Playwright; never `playwright install`) ---

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@contextmanager
def open_page(browser, console_errors: bool = True, **context_options):
    """A page in a fresh 1400×1000 context. `page.errors` collects uncaught exceptions
    (and, with console_errors, console errors); `page.requests` every URL requested."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, **context_options)
    page = context.new_page()
    page.errors, page.requests = [], []
    if console_errors:
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("request", lambda r: page.requests.append(r.url))
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def page(request, browser):
    """A page (`open_page`) beside the module's `server` fixture, with the module's
    PAGE_OPTIONS (e.g. {"accept_downloads": True})."""
    request.getfixturevalue("server")
    with open_page(browser, **getattr(request.module, "PAGE_OPTIONS", {})) as page:
        yield page
