"""REST routes and the WebSocket protocol through TestClient."""

import json
import math
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from backproplab.api.app import create_app
from backproplab.settings import Settings
from conftest import strict_loads

SMALL = {"depth": 3, "width": 8, "steps": 6, "batch_size": 8}
OVERFLOW = {"activation": "tanh", "depth": 300, "width": 32, "init": "normal", "sigma_w": 20.0,
            "dtype": "float32", "steps": 3, "batch_size": 8}


@pytest.fixture
def client():
    with TestClient(create_app(Settings())) as c:
        yield c


def wait_done(client, run_id, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = client.get(f"/api/runs/{run_id}").json()
        if body["status"] != "running":
            return body
        time.sleep(0.05)
    raise AssertionError("run did not finish")


def test_health_info_schema(client):
    assert client.get("/api/health").json() == {"status": "ok"}
    info = client.get("/api/info").json()
    assert "numpy" in info["engines"] and info["limits"]["max_sessions"] >= 64
    schema = client.get("/api/schema/config").json()
    assert schema["properties"]["depth"]["maximum"] == 1000
    assert "tanh" in schema["properties"]["activation"]["enum"]


def test_security_headers(client):
    r = client.get("/")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "cdn" not in r.text.lower()
    js = client.get("/vendor/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000


def test_headless_run_export_import_roundtrip(client):
    r = client.post("/api/runs", json=SMALL)
    assert r.status_code == 202
    body = wait_done(client, r.json()["id"])
    assert body["status"] == "done" and body["steps_recorded"] == 6
    record = body["record"]
    assert record["schema"] == "backproplab.run/1" and record["config"]["depth"] == 3
    assert len(record["steps"][0]["layers"]) == 4
    assert record["theory"]["chi1"] > 0
    exported = client.get(f"/api/runs/{r.json()['id']}/export")
    assert "attachment" in exported.headers["content-disposition"]
    strict_loads(exported.text)
    imported = client.post("/api/runs/import", content=exported.content,
                           headers={"content-type": "application/json"})
    assert imported.status_code == 200
    assert imported.json()["steps"] == strict_loads(exported.text)["steps"]


def test_overflowing_run_is_strict_json_with_identifiable_nonfinite(client):
    r = client.post("/api/runs", json=OVERFLOW)
    body = wait_done(client, r.json()["id"])
    assert body["status"] == "done"
    text = client.get(f"/api/runs/{r.json()['id']}/export").text
    record = strict_loads(text)  # parses under JSON.parse rules
    values = [layer["delta_norm"] for s in record["steps"] for layer in s["layers"]]
    assert "Infinity" in values or "NaN" in values
    # and they come back as floats on import
    back = client.post("/api/runs/import", content=text,
                       headers={"content-type": "application/json"}).json()
    strict_loads(json.dumps(back))


def test_import_reports_the_path_of_a_bad_field(client):
    r = client.post("/api/runs", json=SMALL)
    wait_done(client, r.json()["id"])
    record = client.get(f"/api/runs/{r.json()['id']}/export").json()
    record["steps"][2]["layers"][1]["delta_norm"] = "lots"
    bad = client.post("/api/runs/import", json=record)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "steps", 2, "layers", 1, "delta_norm"]
    record["steps"][2]["layers"][1]["delta_norm"] = 1.0
    record["steps"][0]["layers"].pop()
    assert client.post("/api/runs/import", json=record).json()["detail"][0]["loc"] == \
        ["body", "steps", 0, "layers"]
    # another program's JSON: said in words, not as a regular expression
    other = client.post("/api/runs/import", json={**record, "schema": "wandb.run/3"})
    first = other.json()["detail"][0]
    assert other.status_code == 422 and first["loc"] == ["body", "schema"]
    assert first["msg"] == ("'wandb.run/3' is not backproplab.run/1, the schema of a file "
                            "from Export or from watch()")


@pytest.mark.parametrize("field,value,fragment", [
    ("depth", 0, "greater than or equal to 1"), ("activation", "swish", "Input should be"),
    ("sigma_w", "NaN", "finite"), ("lr", -1, "greater than 0"), ("surprise", 1, "Extra"),
])
def test_bad_config_is_422_naming_the_field(client, field, value, fragment):
    r = client.post("/api/runs", json={**SMALL, field: value})
    assert r.status_code == 422
    detail = r.json()["detail"][0]
    assert detail["loc"][-1] == field and fragment.lower() in detail["msg"].lower()


@pytest.mark.parametrize("extra,fragment", [
    ({"engine": "numpy", "dtype": "tf32"}, "dtype 'tf32' needs engine 'torch'"),
    ({"engine": "torch", "device": "cpu", "dtype": "tf32"}, "dtype 'tf32' needs device 'cuda'"),
    ({"engine": "numpy", "dtype": "bfloat16"}, "dtype 'bfloat16' needs engine 'torch'"),
])
def test_dtypes_the_engine_or_device_cannot_run_are_422(client, extra, fragment):
    r = client.post("/api/runs", json={**SMALL, **extra})
    assert r.status_code == 422
    assert fragment in r.json()["detail"][0]["msg"]


def test_compute_budget_names_the_limit_and_what_to_lower(client):
    """Over the budget, over HTTP and over the WebSocket: the check's own words (not
    pydantic's "Value error, "), what to lower, and no field named for a whole-config
    check."""
    big = {"depth": 1000, "width": 4096, "steps": 1000}
    r = client.post("/api/runs", json=big)
    assert r.status_code == 422
    msg = r.json()["detail"][0]["msg"]
    assert msg.startswith("compute budget exceeded: depth·width²·batch·steps = ")
    assert "lower the steps, width, depth or batch size" in msg
    with client.websocket_connect("/api/live") as ws:
        ws.send_text(json.dumps({"type": "start", "config": big}))
        err = strict_loads(ws.receive_text())
    assert err["code"] == "invalid_config" and err["field"] is None
    assert err["message"].startswith("compute budget exceeded:"), err


def test_an_orthogonal_initialization_counts_in_the_budget(client):
    """A QR per layer: 1000 layers of 4096 orthogonal is hours of CPU before step 0,
    though one step of batch 1 is cheap."""
    from backproplab.model import RunSpec

    cheap = {"depth": 1000, "width": 4096, "steps": 1, "batch_size": 1}
    spec = RunSpec(**cheap, init="orthogonal")
    assert spec.work == 1000 * 4096**2 * (1 + 2048)  # depth·width²·(batch·steps + width/2)
    assert RunSpec(**cheap).work == 1000 * 4096**2
    r = client.post("/api/runs", json={**cheap, "init": "orthogonal"})
    assert r.status_code == 422
    assert "(+ depth·width³/2: orthogonal init)" in r.json()["detail"][0]["msg"]


def test_building_the_weights_stops_between_layers_when_asked():
    from backproplab.model import RunSpec, init_params
    from backproplab.model.init import InitStopped, stoppable

    asked = []

    def stop_at_third():
        asked.append(1)
        return len(asked) == 3

    with stoppable(stop_at_third), pytest.raises(InitStopped):
        init_params(RunSpec(depth=5, width=8))
    assert len(asked) == 3
    assert len(init_params(RunSpec(depth=5, width=8))) == 6  # outside the context: whole


def test_over_the_session_limit_is_429_with_a_retry_time():
    with TestClient(create_app(Settings(max_sessions=1))) as c:
        first = c.post("/api/runs", json={**SMALL, "steps": 100000, "depth": 1, "width": 4})
        assert first.status_code == 202
        second = c.post("/api/runs", json=SMALL)
        assert second.status_code == 429 and "BACKPROPLAB_MAX_SESSIONS" in \
            second.json()["detail"]
        assert int(second.headers["retry-after"]) > 0
        assert c.delete(f"/api/runs/{first.json()['id']}").json()["status"] == "stopped"
        assert c.post("/api/runs", json=SMALL).status_code == 202  # its place is free again
        c.app.state.manager.shutdown()


def test_body_limit_is_413():
    with TestClient(create_app(Settings(max_body_bytes=2048))) as c:
        r = c.post("/api/runs/import", content=b"[" + b"1," * 4000 + b"1]",
                   headers={"content-type": "application/json"})
        assert r.status_code == 413


def test_theory_and_phase(client):
    t = client.get("/api/theory", params={"activation": "tanh", "init": "normal",
                                          "sigma_w": math.sqrt(1.5),
                                          "sigma_b": math.sqrt(0.05)}).json()
    assert t["chi1"] == pytest.approx(0.93864, abs=1e-4)
    assert client.get("/api/theory", params={"depth": -1}).status_code == 422
    # the theory trains nothing: a network over the training budget still has one (its
    # χ₁ the same as at a size inside it: the fixed point does not depend on the width)
    start = time.perf_counter()
    big = client.get("/api/theory", params={"activation": "tanh", "depth": 1000,
                                            "width": 4096, "steps": 100000})
    assert big.status_code == 200 and time.perf_counter() - start < 5
    small = client.get("/api/theory", params={"activation": "tanh", "depth": 1000,
                                              "width": 16, "steps": 1})
    assert big.json()["chi1"] == small.json()["chi1"]
    p = client.get("/api/phase", params={"grid": 5, "measured": "true", "width": 32,
                                         "depth": 5}).json()
    assert np.array(p["analytic"]["chi1"]).shape == (5, 5)
    assert np.array(p["measured"]["measured_chi1"]).shape == (5, 5)
    assert client.get("/api/phase", params={"grid": 64, "measured": "true", "width": 1024,
                                            "depth": 1000}).status_code == 422


def test_tape_inspection_recurrence_matches_the_tape(client):
    walk = client.post("/api/tape/inspect", json={"depth": 2, "width": 3,
                                                  "activation": "tanh"}).json()
    ops_backward = [s["op"] for s in walk["steps"]]
    assert ops_backward == ["mse", "dense", "tanh", "dense", "tanh", "dense"]
    for rec in walk["recurrences"]:
        np.testing.assert_allclose(rec["delta"], rec["delta_from_tape"], rtol=1e-12)
        manual = (np.array(rec["delta_next"]) @ np.array(rec["W_next"])) * \
            np.array(rec["sigma_prime"])
        np.testing.assert_allclose(rec["delta"], manual, rtol=1e-12)
    assert walk["forward"][-1]["op"] == "sum"
    modes = client.post("/api/tape/jacobian-modes", json={"depth": 2, "width": 8}).json()
    assert modes["forward_passes"] == 16 and modes["reverse_passes"] == 10
    assert modes["max_abs_difference"] < 1e-12


def test_report_download(client):
    r = client.post("/api/runs", json=SMALL)
    wait_done(client, r.json()["id"])
    html = client.get(f"/api/runs/{r.json()['id']}/report")
    assert html.status_code == 200 and "<html" in html.text and "plotly" in html.text.lower()


# --- WebSocket protocol ----------------------------------------------------------------
def receive_until(ws, types, limit=500):
    seen = []
    for _ in range(limit):
        msg = strict_loads(ws.receive_text())
        seen.append(msg)
        if msg["type"] in types:
            return seen
    raise AssertionError(f"no {types} in {[m['type'] for m in seen]}")


def test_ws_start_streams_run_steps_done(client):
    with client.websocket_connect("/api/live") as ws:
        ws.send_text(json.dumps({"type": "start", "config": SMALL}))
        msgs = receive_until(ws, {"done"})
        assert msgs[0]["type"] == "run"
        theory = [m for m in msgs if m["type"] == "theory"]
        assert len(theory) == 1 and theory[0]["theory"]["chi1"] > 0
        steps = [m for m in msgs if m["type"] == "step"]
        assert steps[0]["step"] == 0 and steps[-1]["step"] == 5
        assert all(m["run"] == msgs[0]["id"] for m in steps)


@pytest.mark.parametrize("raw,code", [
    ("not json", "bad_json"), ("[1, 2]", "bad_message"), ('{"kind": "start"}', "bad_message"),
    ('{"type": "dance"}', "unknown_type"), ('{"type": "start"}', "bad_message"),
    ('{"type": "pause"}', "no_run"),
])
def test_ws_bad_messages_get_error_frames_and_the_connection_lives(client, raw, code):
    with client.websocket_connect("/api/live") as ws:
        ws.send_text(raw)
        err = strict_loads(ws.receive_text())
        assert err["type"] == "error" and err["code"] == code and err["message"]
        ws.send_text(json.dumps({"type": "ping", "t": 1}))
        assert strict_loads(ws.receive_text()) == {"type": "pong", "t": 1}


def test_ws_invalid_config_names_the_field(client):
    with client.websocket_connect("/api/live") as ws:
        ws.send_text(json.dumps({"type": "start", "config": {"width": 99999}}))
        err = strict_loads(ws.receive_text())
        assert err["code"] == "invalid_config" and err["field"] == "width"


def test_ws_update_replaces_the_run(client):
    with client.websocket_connect("/api/live") as ws:
        ws.send_text(json.dumps({"type": "start", "config": {**SMALL, "steps": 100000}}))
        first = receive_until(ws, {"step"})[0]["id"]
        ws.send_text(json.dumps({"type": "update", "config": {**SMALL, "depth": 5}}))
        msgs = receive_until(ws, {"done"})
        runs = [m for m in msgs if m["type"] == "run"]
        assert runs and runs[-1]["id"] != first
        last_steps = [m for m in msgs if m["type"] == "step" and m["run"] == runs[-1]["id"]]
        assert len(last_steps[-1]["layers"]) == 6
        assert client.app.state.manager.active == 0


def test_ws_pause_step_resume(client):
    with client.websocket_connect("/api/live") as ws:
        ws.send_text(json.dumps({"type": "start", "paused": True,
                                 "config": {**SMALL, "steps": 50, "record": {"every": 10}}}))
        assert receive_until(ws, {"run"})[-1]["type"] == "run"
        ws.send_text(json.dumps({"type": "step"}))
        step = receive_until(ws, {"step"})[-1]
        assert step["step"] == 0
        ws.send_text(json.dumps({"type": "step"}))
        assert receive_until(ws, {"step"})[-1]["step"] == 1  # forced, though every=10
        ws.send_text(json.dumps({"type": "resume"}))
        assert receive_until(ws, {"done"})[-1]["type"] == "done"


def test_ws_origin_check(client):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as exc, \
            client.websocket_connect("/api/live", headers={"origin": "http://evil.example"}) as ws:
        ws.receive_text()
    assert exc.value.code == 1008
    with client.websocket_connect("/api/live", headers={"origin": "http://testserver"}) as ws:
        ws.send_text('{"type": "ping"}')
        assert strict_loads(ws.receive_text())["type"] == "pong"


def test_ws_over_the_limit_closes_1013():
    from starlette.websockets import WebSocketDisconnect

    with TestClient(create_app(Settings(max_sessions=1))) as c, \
            c.websocket_connect("/api/live") as a, c.websocket_connect("/api/live") as b:
        a.send_text(json.dumps({"type": "start", "config": {**SMALL, "steps": 100000}}))
        receive_until(a, {"step"})
        b.send_text(json.dumps({"type": "start", "config": SMALL}))
        err = strict_loads(b.receive_text())
        assert err["code"] == "busy"
        with pytest.raises(WebSocketDisconnect) as exc:
            b.receive_text()
        assert exc.value.code == 1013


def test_ws_message_too_big_closes_1009():
    from starlette.websockets import WebSocketDisconnect

    with TestClient(create_app(Settings(max_message_bytes=2048))) as c, \
            c.websocket_connect("/api/live") as ws:
        ws.send_text(json.dumps({"type": "start", "config": {"x": "y" * 5000}}))
        assert strict_loads(ws.receive_text())["code"] == "too_large"
        with pytest.raises(WebSocketDisconnect) as exc:
            ws.receive_text()
        assert exc.value.code == 1009
