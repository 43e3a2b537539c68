"""Shared fixtures: an app for TestClient, and a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import threading
import time

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
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def manager(self):
        return self.app.state.manager


@pytest.fixture
def live_server():
    with ServerThread(Settings(frame_rate=50)) as server:
        yield server


def make_server(port: int = 0, **settings):
    return ServerThread(Settings(**settings), port=port)
