"""The stored runs through the API: list, get, export, rename, delete, compare, report,
imports; the event loop stays free while several jobs write."""

import json
import time

import httpx
import pytest
import websockets
from fastapi.testclient import TestClient

from backproplab.api.app import create_app
from backproplab.settings import Settings
from conftest import make_server, strict_loads

SMALL = {"depth": 3, "width": 8, "steps": 6, "batch_size": 8}
OVERFLOW = {"activation": "tanh", "depth": 300, "width": 32, "init": "normal", "sigma_w": 20.0,
            "dtype": "float32", "steps": 3, "batch_size": 8}


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(Settings(max_sessions=4, data_dir=str(tmp_path)))) as c:
        yield c


def finished(client, config):
    run_id = client.post("/api/runs", json=config).json()["id"]
    deadline = time.time() + 30
    while client.get(f"/api/runs/{run_id}").json()["status"] == "running":
        assert time.time() < deadline
        time.sleep(0.02)
    return run_id


def test_list_get_export_rename_delete(client):
    a = finished(client, SMALL)
    b = finished(client, {**SMALL, "activation": "relu", "init": "he_normal"})
    listed = client.get("/api/runs").json()
    assert [r["id"] for r in listed["runs"]] == [b, a] and listed["total"] == 2
    assert listed["next"] is None
    page = client.get("/api/runs", params={"limit": 1}).json()
    assert [r["id"] for r in page["runs"]] == [b] and page["next"] == b
    assert [r["id"] for r in client.get("/api/runs", params={"limit": 1, "before": b})
            .json()["runs"]] == [a]
    assert client.get("/api/runs", params={"source": "live"}).json()["total"] == 0

    body = client.get(f"/api/runs/{a}").json()
    export = strict_loads(client.get(f"/api/runs/{a}/export").text)
    assert body["record"] == export and body["steps_recorded"] == 6
    assert body["status"] == "done" and body["source"] == "headless"
    assert body["summary"]["final_loss"] == export["steps"][-1]["loss"]
    assert listed["runs"][1]["summary"]["min_loss"] == min(s["loss"] for s in export["steps"])
    assert list(export) == ["schema", "config", "environment", "theory", "steps"]
    assert export["theory"]["chi1"] is not None and export["environment"]["numpy"]

    renamed = client.patch(f"/api/runs/{a}", json={"name": "tanh baseline", "note": "n"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "tanh baseline"
    assert client.get("/api/runs", params={"name": "BASELINE"}).json()["runs"][0]["id"] == a
    assert client.patch(f"/api/runs/{a}", json={"name": "x" * 201}).status_code == 422
    assert client.patch(f"/api/runs/{a}", json={"colour": "red"}).status_code == 422
    assert client.delete(f"/api/runs/{b}").status_code == 204
    for r in (client.get(f"/api/runs/{b}"), client.get(f"/api/runs/{b}/export"),
              client.delete(f"/api/runs/{b}"), client.patch(f"/api/runs/{b}", json={})):
        assert r.status_code == 404 and b in r.json()["detail"]
    assert client.get("/api/runs", params={"before": "nope"}).status_code == 404


def test_nonfinite_runs_export_strict_json_with_the_overflow_marker(client):
    run_id = finished(client, OVERFLOW)
    text = client.get(f"/api/runs/{run_id}/export").text
    record = strict_loads(text)  # the browser's JSON.parse accepts it
    marked = [s for s in record["steps"] if "overflow" in s]
    assert len(marked) == 1
    bad = marked[0]["layers"][marked[0]["overflow"]["layer"]]
    assert {bad["delta_norm"], bad["grad_w_norm"]} & {"NaN", "Infinity"}
    summary = client.get("/api/runs").json()["runs"][0]["summary"]
    assert summary["first_nonfinite"] == marked[0]["overflow"]


def test_import_is_stored_and_validate_only_is_not(client):
    run_id = finished(client, SMALL)
    exported = client.get(f"/api/runs/{run_id}/export").content
    r = client.post("/api/runs/import", content=exported,
                    headers={"content-type": "application/json"})
    assert r.status_code == 200
    imported = r.headers["x-run-id"]
    assert r.headers["location"] == f"/api/runs/{imported}"
    # stored as the import answered it (normalized), which is the record exported
    assert client.get(f"/api/runs/{imported}/export").content == r.content
    assert strict_loads(r.text) == strict_loads(exported.decode())
    assert client.get(f"/api/runs/{imported}").json()["source"] == "imported"
    r = client.post("/api/runs/import?store=false", content=exported,
                    headers={"content-type": "application/json"})
    assert r.status_code == 200 and "x-run-id" not in r.headers
    assert client.get("/api/runs").json()["total"] == 2


@pytest.mark.parametrize("where, value", [("step", 2**63), ("step", 2**53),
                                          ("overflow", {"step": 2**64 - 1, "layer": 0}),
                                          ("overflow", {"step": 0, "layer": -1})])
def test_numbers_json_does_not_carry_exactly_are_refused_and_nothing_is_left(client, where,
                                                                            value):
    """A step, or an overflow's step or layer, beyond 2⁵³ − 1 (or negative) is a 422 that
    names the field, from the check and from the import alike; no run is left behind."""
    run_id = finished(client, SMALL)
    record = strict_loads(client.get(f"/api/runs/{run_id}/export").text)
    record["steps"][0][where] = value
    from backproplab.runs.codec import encode

    for query in ("?store=false", ""):
        r = client.post(f"/api/runs/import{query}", content=encode(record),
                        headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        loc = r.json()["detail"][0]["loc"]
        assert loc[:4] == ["body", "steps", 0, where], loc
    assert client.get("/api/runs").json()["total"] == 1
    # the store itself takes a failed batch back: nothing half-stored stays listed
    from backproplab.runs.store import prepare_record

    prepared = prepare_record(strict_loads(client.get(f"/api/runs/{run_id}/export").text))
    prepared["rows"][0] = (2**63, *prepared["rows"][0][1:])
    with pytest.raises(OverflowError):
        client.app.state.manager.store.put_prepared(prepared)
    assert client.get("/api/runs").json()["total"] == 1


def test_compare_and_its_report(client):
    a = finished(client, SMALL)
    b = finished(client, {**SMALL, "init": "he_normal", "record": {"every": 2}})
    out = client.get("/api/runs/compare", params={"ids": f"{a},{b}"}).json()
    differing = {f["field"]: f["values"] for f in out["fields"] if f["differs"]}
    assert differing == {"init": ["xavier_normal", "he_normal"], "record.every": [1, 2]}
    record_b = strict_loads(client.get(f"/api/runs/{b}/export").text)
    assert out["runs"][1]["series"]["step"] == [s["step"] for s in record_b["steps"]] \
        == [0, 2, 4, 5]  # every 2nd step, and the last
    assert out["runs"][1]["series"]["loss"] == [s["loss"] for s in record_b["steps"]]
    assert out["runs"][1]["last"]["delta_norm"] == [layer["delta_norm"] for layer in
                                                    record_b["steps"][-1]["layers"]]
    html = client.get("/api/runs/compare/report", params={"ids": f"{a},{b}"})
    assert html.status_code == 200 and "2 runs compared" in html.text
    assert html.text.count('class="differs"') == 2 and "init (differs)" in html.text
    assert 'src="http' not in html.text  # plotly.js embedded: works offline
    assert client.get("/api/runs/compare", params={"ids": a}).status_code == 422
    missing = client.get("/api/runs/compare", params={"ids": f"{a},nope"})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_a_live_run_is_stored_step_by_step(client):
    with client.websocket_connect("/api/live") as ws:
        # long enough (~30 s) to be running still when it is stopped, also under load
        ws.send_text(json.dumps({"type": "start", "config": {
            **SMALL, "depth": 8, "width": 64, "batch_size": 32, "steps": 100000}}))
        seen = []
        while len(seen) < 5:
            frame = strict_loads(ws.receive_text())
            if frame["type"] == "step":
                seen.append(frame)
        run_id = seen[0]["run"]
        stored = client.get(f"/api/runs/{run_id}").json()
        assert stored["status"] == "running" and stored["source"] == "live"
        assert stored["steps_recorded"] >= seen[-1]["step"] + 1  # stored before it is shown
        for frame in seen:
            assert stored["record"]["steps"][frame["step"]]["loss"] == frame["loss"]
        ws.send_text(json.dumps({"type": "stop"}))
        while (frame := strict_loads(ws.receive_text()))["type"] != "stopped":
            assert frame["type"] != "error", frame  # (e.g. no_run: it had ended before)
    assert client.get(f"/api/runs/{run_id}").json()["status"] == "stopped"


def test_a_run_stopped_before_its_first_step_leaves_nothing(client):
    from backproplab.api.schemas import validate_config
    from backproplab.runs.manager import FrameSink

    cfg = validate_config({**SMALL, "steps": 1000})
    job = client.app.state.manager.start(cfg.to_spec(), FrameSink(None), cfg.model_dump(),
                                         paused=True)
    deadline = time.time() + 10
    while client.get(f"/api/runs/{job.id}").json()["record"]["environment"] is None:
        assert time.time() < deadline  # stored at once, waiting before its first step
        time.sleep(0.02)
    assert client.get("/api/runs").json()["total"] == 1
    job.stop()
    job.join(10)
    assert job.status == "cancelled" and job.steps_recorded == 0
    assert client.get(f"/api/runs/{job.id}").status_code == 404
    assert client.get("/api/runs").json()["total"] == 0


def test_a_long_transaction_elsewhere_blocks_neither_the_loop_nor_readers(tmp_path):
    """Another process (a CLI import, say) holds the database's write lock for 1.5 s
    while two live runs write every step: /api/health and GET /api/runs keep answering
    at once (WAL readers do not wait; writes happen in the job threads), and once the
    lock is released the jobs go on with no step lost."""
    import asyncio
    import sqlite3
    import threading

    with make_server(max_sessions=2, frame_rate=20, data_dir=str(tmp_path)) as server:
        store = server.manager.store
        held = threading.Event()

        def hold_the_write_lock():
            other = sqlite3.connect(tmp_path / "runs.sqlite3", isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            held.set()
            time.sleep(1.5)
            other.execute("COMMIT")
            other.close()

        async def go():
            sockets = [await websockets.connect(server.ws_url) for _ in range(2)]
            for ws in sockets:
                await ws.send(json.dumps({"type": "start", "config": {
                    "depth": 20, "width": 16, "batch_size": 8, "steps": 100000}}))
            while store.count(source="live") < 2 or min(
                    r["steps"] for r in store.list(source="live")) < 3:
                await asyncio.sleep(0.05)
            holder = threading.Thread(target=hold_the_write_lock)
            holder.start()
            await asyncio.to_thread(held.wait)
            times = []
            async with httpx.AsyncClient(base_url=server.url) as http:
                t_end = time.perf_counter() + 1.2
                while time.perf_counter() < t_end:
                    for path in ("/api/health", "/api/runs"):
                        t0 = time.perf_counter()
                        assert (await http.get(path)).status_code == 200
                        times.append(time.perf_counter() - t0)
                    await asyncio.sleep(0.02)
            counts_during = [r["steps"] for r in store.list(source="live")]
            await asyncio.to_thread(holder.join)
            await asyncio.sleep(0.5)
            counts_after = [r["steps"] for r in store.list(source="live")]
            # read before the sockets close: an unfinished run left by its page is dropped
            recorded = [[s["step"] for s in store.record(r["id"])["steps"]]
                        for r in store.list(source="live")]
            for ws in sockets:
                await ws.close()
            return sorted(times), counts_during, counts_after, recorded

        times, during, after, recorded = asyncio.run(asyncio.wait_for(go(), 60))
        assert len(times) > 10 and times[len(times) // 2] < 0.1
        assert all(a > d for a, d in zip(after, during, strict=True))  # writing again
        assert len(recorded) == 2
        for steps in recorded:
            assert steps == list(range(len(steps)))  # nothing lost while they waited
        check = sqlite3.connect(tmp_path / "runs.sqlite3")
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        check.close()


def test_the_store_routes_name_their_models_and_answers_validate(client):
    from backproplab.api import models

    a = finished(client, SMALL)
    b = finished(client, OVERFLOW)
    spec = client.get("/openapi.json").json()
    for method, path, model in (("get", "/api/runs", models.RunList),
                                ("get", "/api/runs/compare", models.Comparison),
                                ("patch", "/api/runs/{run_id}", models.RunSummary)):
        content = spec["paths"][path][method]["responses"]["200"]["content"]
        assert content["application/json"]["schema"] == \
            {"$ref": f"#/components/schemas/{model.__name__}"}, path
    listed = models.RunList.model_validate(strict_loads(client.get("/api/runs").text))
    assert [r.id for r in listed.runs] == [b, a]
    assert listed.runs[0].summary["final_loss"] in ("NaN", "Infinity")  # strict JSON
    edited = client.patch(f"/api/runs/{a}", json={"name": "kept"})
    assert models.RunSummary.model_validate(strict_loads(edited.text)).name == "kept"
    comparison = client.get("/api/runs/compare", params={"ids": f"{a},{b}"})
    parsed = models.Comparison.model_validate(strict_loads(comparison.text))
    # SMALL against OVERFLOW (both tanh, float32, batch 8 by default or by choice)
    assert {f.field for f in parsed.fields if f.differs} == {"depth", "width", "init",
                                                             "sigma_w", "steps"}
    state = models.RunState.model_validate(strict_loads(client.get(f"/api/runs/{a}").text))
    assert state.name == "kept" and state.source == "headless" and state.status == "done"
