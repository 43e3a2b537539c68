"""A run's place is free before its end is announced: a client that starts the next
run on `done` (or on a finished status) is never refused, even with one session."""

import json
import time

from fastapi.testclient import TestClient

from backproplab.api.app import create_app
from backproplab.settings import Settings
from conftest import strict_loads

TINY = {"depth": 1, "width": 4, "steps": 2, "batch_size": 4}


def until(ws, kind: str) -> dict:
    for _ in range(100):
        msg = strict_loads(ws.receive_text())
        if msg["type"] in (kind, "error"):
            return msg
    raise AssertionError(f"no {kind} frame")


def test_next_live_run_on_done_is_never_refused():
    with TestClient(create_app(Settings(max_sessions=1))) as client, \
            client.websocket_connect("/api/live") as a, \
            client.websocket_connect("/api/live") as b:
        for _ in range(15):
            for ws in (a, b):  # alternate: the other connection's run just ended
                ws.send_text(json.dumps({"type": "start", "config": TINY}))
                assert until(ws, "done")["type"] == "done"
                assert client.app.state.manager.ledger.sessions == 0


def test_next_headless_run_on_finished_status_is_never_refused():
    with TestClient(create_app(Settings(max_sessions=1))) as client:
        for _ in range(15):
            started = client.post("/api/runs", json=TINY)
            assert started.status_code == 202, started.text
            run_id = started.json()["id"]
            deadline = time.time() + 30
            while client.get(f"/api/runs/{run_id}").json()["status"] == "running":
                assert time.time() < deadline
                time.sleep(0.005)
