"""Which live runs the Runs list keeps: a run that finished, or that was stopped, paused,
exported or named; a run replaced mid-way by a new setting (a drag, a preset click) or
left by a reload is dropped with its steps."""

import json
import time

import pytest
from fastapi.testclient import TestClient

from backproplab.api.app import create_app
from backproplab.settings import Settings
from conftest import strict_loads

SMALL = {"depth": 3, "width": 8, "steps": 6, "batch_size": 8}
LONG = {**SMALL, "steps": 100000}


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(Settings(max_sessions=4, data_dir=str(tmp_path)))) as c:
        yield c


def first_step(ws):
    """The id of the run just started, once its first step is shown (frames of the run
    it replaced may still arrive first)."""
    run_id = until(ws, "run")["id"]
    while True:
        frame = strict_loads(ws.receive_text())
        if frame["type"] == "step" and frame["run"] == run_id:
            return run_id


def until(ws, kind):
    while True:
        frame = strict_loads(ws.receive_text())
        if frame["type"] == kind:
            return frame


def stored_ids(client):
    return {r["id"] for r in client.get("/api/runs", params={"limit": 100}).json()["runs"]}


def test_runs_replaced_by_new_settings_are_dropped_and_the_finished_one_kept(client):
    with client.websocket_connect("/api/live") as ws:
        replaced = []
        for depth in (3, 4, 5):  # a drag: each run replaced after its first step
            ws.send_text(json.dumps({"type": "update", "config": {**LONG, "depth": depth}}))
            replaced.append(first_step(ws))
        ws.send_text(json.dumps({"type": "update", "config": SMALL}))
        last = first_step(ws)
        while (done := until(ws, "done"))["id"] != last:
            pass
        assert done["steps"] == SMALL["steps"]
    ids = stored_ids(client)
    assert last in ids and client.get(f"/api/runs/{last}").json()["status"] == "done"
    assert not ids & set(replaced), ids
    for run_id in replaced:
        assert client.get(f"/api/runs/{run_id}").status_code == 404


def test_paused_stopped_exported_and_named_runs_are_kept_when_replaced(client):
    kept = {}
    with client.websocket_connect("/api/live") as ws:
        for how in ("pause", "stop", "export", "name", "nothing"):
            ws.send_text(json.dumps({"type": "update", "config": LONG}))
            run_id = first_step(ws)
            if how in ("pause", "stop"):
                ws.send_text(json.dumps({"type": how}))
                if how == "stop":
                    until(ws, "stopped")
                else:
                    time.sleep(0.1)
            elif how == "export":
                assert client.get(f"/api/runs/{run_id}/export").status_code == 200
            elif how == "name":
                assert client.patch(f"/api/runs/{run_id}",
                                    json={"name": "mine"}).status_code == 200
            kept[how] = run_id
        ws.send_text(json.dumps({"type": "update", "config": SMALL}))
        until(ws, "done")
    ids = stored_ids(client)
    for how in ("pause", "stop", "export", "name"):
        assert kept[how] in ids, how
        assert client.get(f"/api/runs/{kept[how]}").json()["status"] == "stopped"
    assert kept["nothing"] not in ids


def test_a_reload_drops_the_unfinished_run_and_keeps_a_finished_one(client):
    with client.websocket_connect("/api/live") as ws:
        ws.send_text(json.dumps({"type": "start", "config": SMALL}))
        finished = until(ws, "done")["id"]
        ws.send_text(json.dumps({"type": "update", "config": LONG}))
        unfinished = first_step(ws)
    deadline = time.time() + 10
    while client.get(f"/api/runs/{unfinished}").status_code != 404:
        assert time.time() < deadline
        time.sleep(0.02)
    assert client.get(f"/api/runs/{finished}").json()["status"] == "done"
