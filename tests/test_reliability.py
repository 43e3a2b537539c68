"""Bad input (property-based), faults and divergence: no 5xx, no crash, every
rejection a 4xx or an error frame that names the problem."""

import asyncio
import json
import math
import threading

import pytest
import websockets
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backproplab.api.app import create_app
from backproplab.api.schemas import RunConfig
from backproplab.settings import Settings
from conftest import make_server, strict_loads

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    | st.sampled_from(["NaN", "Infinity", "-Infinity", "1/sqrt(depth)", "tanh", "cuda"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8),
                                                                       children, max_size=3),
    max_leaves=6)
FIELDS = list(RunConfig.model_fields)
FIXTURE_OK = [HealthCheck.function_scoped_fixture]


@pytest.fixture(scope="module")
def client():
    app = create_app(Settings(compute_budget=2e7))
    with TestClient(app) as c:
        yield c
        app.state.manager.shutdown()


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURE_OK)
@given(field=st.sampled_from(FIELDS), value=json_values)
def test_any_value_in_any_rest_field_is_accepted_or_named(client, field, value):
    r = client.post("/api/runs", json={"steps": 2, "depth": 2, "width": 4, field: value})
    assert r.status_code in (202, 422, 429), r.text
    if r.status_code == 422:
        detail = r.json()["detail"]
        assert detail and all(d["msg"] for d in detail)
        assert any(field in map(str, d["loc"]) or d["loc"][-1] == "body" for d in detail), detail
    q = client.get("/api/theory", params={field: json.dumps(value) if not isinstance(
        value, str) else value})
    assert q.status_code in (200, 422)


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE_OK)
@given(body=json_values)
def test_any_body_on_every_post_route_is_4xx_not_5xx(client, body):
    for path in ("/api/runs", "/api/runs/import", "/api/tape/inspect",
                 "/api/tape/jacobian-modes", "/api/report"):
        r = client.post(path, json=body)
        assert r.status_code < 500, (path, r.text)


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE_OK)
@given(message=st.one_of(
    json_values,
    st.fixed_dictionaries({"type": st.sampled_from(
        ["start", "update", "pause", "resume", "step", "stop", "ping", "bogus", 3, None])},
        optional={"config": json_values, "paused": json_values, "t": json_values})))
def test_any_websocket_message_gets_a_frame_and_the_socket_lives(client, message):
    with client.websocket_connect("/api/live") as ws:
        ws.send_text(json.dumps(message))
        ws.send_text(json.dumps({"type": "ping", "t": "alive"}))
        for _ in range(200):
            frame = strict_loads(ws.receive_text())
            assert frame["type"] in ("error", "run", "step", "theory", "done", "pong",
                                     "stopped")
            if frame["type"] == "error":
                assert frame["code"] and frame["message"]
            if frame == {"type": "pong", "t": "alive"}:
                break
        else:
            raise AssertionError("no pong")


def test_tight_open_close_loop_leaves_the_server_healthy():
    with make_server() as server:
        async def go():
            for i in range(150):
                async with websockets.connect(server.ws_url) as ws:
                    if i % 3 == 0:
                        await ws.send(json.dumps({"type": "start", "config": {
                            "depth": 3, "width": 8, "steps": 1000}}))
            async with websockets.connect(server.ws_url) as ws:
                await ws.send(json.dumps({"type": "start", "config": {
                    "depth": 3, "width": 8, "steps": 5}}))
                while strict_loads(await ws.recv())["type"] != "done":
                    pass

        asyncio.run(asyncio.wait_for(go(), 120))
        for _ in range(100):
            if server.manager.active == 0:
                break
            threading.Event().wait(0.02)
        assert server.manager.active == 0 and server.manager.ledger.sessions == 0
        assert server.manager.ledger.bytes == 0
        pool = server.manager.scheduler.threads  # a fixed pool, whatever the runs
        assert len(pool) == server.manager.settings.workers + 1
        assert all(t.is_alive() for t in pool)
        assert not [t for t in threading.enumerate() if t.name.startswith("job-")]


def test_diverging_run_streams_exports_imports_and_reports():
    config = {"activation": "linear", "depth": 60, "width": 32, "init": "normal",
              "sigma_w": 40.0, "steps": 4, "batch_size": 8, "dtype": "float32",
              "record": {"jacobian_every": 1}}
    with TestClient(create_app(Settings())) as c:
        with c.websocket_connect("/api/live") as ws:
            ws.send_text(json.dumps({"type": "start", "config": config}))
            frames = []
            while not frames or frames[-1]["type"] != "done":
                frames.append(strict_loads(ws.receive_text()))
                assert frames[-1]["type"] != "error", frames[-1]  # no "done" would follow
        run_id = frames[0]["id"]
        steps = [f for f in frames if f["type"] == "step"]
        values = [v for s in steps for layer in s["layers"] for v in layer.values()]
        assert {"NaN", "Infinity"} & set(map(str, values))
        exported = c.get(f"/api/runs/{run_id}/export")
        record = strict_loads(exported.text)
        back = c.post("/api/runs/import", content=exported.content,
                      headers={"content-type": "application/json"})
        assert back.status_code == 200
        norms = [layer["delta_norm"] for s in back.json()["steps"] for layer in s["layers"]]
        assert any(v in ("NaN", "Infinity", "-Infinity") for v in norms)
        report = c.post("/api/report", json=record)
        assert report.status_code == 200 and "<html" in report.text


def test_every_limit_is_a_documented_setting_with_a_safe_default():
    s = Settings()
    for name, field in Settings.model_fields.items():
        assert field.description, name
    assert s.max_sessions >= 64 and s.max_message_bytes <= 1 << 20
    assert s.max_run_bytes < s.max_total_bytes
    assert s.compute_budget < math.inf and s.frame_rate <= 60
    assert "*" not in s.allowed_hosts
