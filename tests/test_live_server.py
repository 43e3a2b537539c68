"""Streaming against a real uvicorn server on 127.0.0.1."""

import asyncio
import json
import threading
import time

import httpx
import pytest
import websockets

from conftest import make_server, strict_loads

LONG = {"depth": 4, "width": 16, "steps": 100000, "batch_size": 8}
OVERFLOW = {"activation": "tanh", "depth": 300, "width": 32, "init": "normal", "sigma_w": 20.0,
            "dtype": "float32", "steps": 5, "batch_size": 8}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_overflowing_run_streams_strict_json(live_server):
    async def go():
        async with websockets.connect(live_server.ws_url) as ws:
            await ws.send(json.dumps({"type": "start", "config": OVERFLOW}))
            frames = []
            while True:
                text = await ws.recv()
                frame = strict_loads(text)  # what the browser's JSON.parse accepts
                frames.append(frame)
                if frame["type"] in ("done", "error"):
                    return frames

    frames = run(go())
    assert frames[-1]["type"] == "done"
    steps = [f for f in frames if f["type"] == "step"]
    flagged = [f for f in steps if "overflow" in f]
    assert flagged, "the frame where values turned non-finite is marked"
    layer = flagged[0]["layers"][flagged[0]["overflow"]["layer"]]
    assert {layer["delta_norm"], layer["grad_w_norm"]} & {"Infinity", "NaN"}


def test_disconnect_mid_run_cancels_the_job_quickly(live_server):
    async def go():
        async with websockets.connect(live_server.ws_url) as ws:
            await ws.send(json.dumps({"type": "start", "config": LONG}))
            while strict_loads(await ws.recv())["type"] != "step":
                pass
            assert live_server.manager.active == 1
            jobs = list(live_server.manager.live)
        return jobs, time.perf_counter()

    jobs, closed_at = run(go())
    job = jobs[0]
    job.join(2.0)
    assert not job.is_alive() and job.status == "cancelled"
    deadline = time.perf_counter() + 2
    while live_server.manager.active and time.perf_counter() < deadline:
        time.sleep(0.005)
    assert live_server.manager.active == 0 and live_server.manager.ledger.bytes == 0
    assert time.perf_counter() - closed_at < 1.0


def test_update_stops_the_old_job_within_100ms(live_server):
    async def go():
        async with websockets.connect(live_server.ws_url) as ws:
            await ws.send(json.dumps({"type": "start", "config": LONG}))
            while strict_loads(await ws.recv())["type"] != "step":
                pass
            old = next(iter(live_server.manager.live))
            t0 = time.perf_counter()
            await ws.send(json.dumps({"type": "update", "config": {**LONG, "depth": 5}}))
            while old.is_alive():
                await asyncio.sleep(0.001)
            stopped = time.perf_counter() - t0
            while True:
                frame = strict_loads(await ws.recv())
                if frame["type"] == "step" and len(frame["layers"]) == 6:
                    return stopped, time.perf_counter() - t0

    stopped, first_frame = run(go())
    assert stopped < 0.1
    assert first_frame < 0.5


def test_frames_are_throttled_while_training_runs_at_full_speed():
    with make_server(frame_rate=10) as server:
        async def go():
            async with websockets.connect(server.ws_url) as ws:
                await ws.send(json.dumps({"type": "start", "config": LONG}))
                t0 = time.perf_counter()
                count = 0
                while time.perf_counter() - t0 < 1.5:
                    frame = strict_loads(await ws.recv())
                    count += frame["type"] == "step"
                job = next(iter(server.manager.live))
                return count, job.steps_recorded

        frames, trained = run(go())
        assert frames <= 1.5 * 10 + 3  # ~10 per second (+ the first frame kept)
        assert trained > 5 * frames  # training did not wait for the client


def test_slow_consumer_is_coalesced_not_buffered():
    with make_server(frame_rate=200, send_timeout=2) as server:
        async def go():
            async with websockets.connect(server.ws_url, max_queue=1) as ws:
                await ws.send(json.dumps({"type": "start", "config": LONG}))
                await asyncio.sleep(1.5)  # read nothing meanwhile
                job = next(iter(server.manager.live))
                sink = job.sink
                pending = len(sink._kept) + (sink._latest is not None)
                return pending, job.steps_recorded

        pending, trained = run(go())
        assert trained > 50
        assert pending <= 3  # bounded whatever the client does


def test_health_stays_fast_while_jobs_run(live_server):
    async def go():
        async with websockets.connect(live_server.ws_url) as a, \
                websockets.connect(live_server.ws_url) as b:
            for ws in (a, b):
                await ws.send(json.dumps({"type": "start", "config": {**LONG, "width": 128,
                                                                      "depth": 20}}))
            async with httpx.AsyncClient(base_url=live_server.url) as client:
                times = []
                for _ in range(30):
                    t0 = time.perf_counter()
                    assert (await client.get("/api/health")).status_code == 200
                    times.append(time.perf_counter() - t0)
                    await asyncio.sleep(0.02)
            return sorted(times)

    times = run(go())
    assert times[int(0.95 * len(times))] < 0.1


@pytest.mark.parametrize("size", [1_000_000])
def test_huge_message_closes_only_that_socket(live_server, size):
    async def go():
        async with websockets.connect(live_server.ws_url) as other:
            try:
                async with websockets.connect(live_server.ws_url, max_size=None) as ws:
                    await ws.send("x" * size)
                    await ws.recv()
            except websockets.ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
            await other.send(json.dumps({"type": "ping"}))
            return code, strict_loads(await other.recv())

    code, pong = run(go())
    assert code == 1009 and pong["type"] == "pong"


def test_stopped_says_whether_the_run_was_kept(live_server):
    """A run stopped before its first step leaves nothing in the store; one stopped
    after it is kept: `kept` says which, as GET /api/runs/{id} finds it."""
    async def stop_after(ws, first_step: bool):
        await ws.send(json.dumps({"type": "start", "config": LONG, "paused": not first_step}))
        while True:
            frame = strict_loads(await ws.recv())
            if frame["type"] == "run" and not first_step or frame["type"] == "step":
                break
        await ws.send(json.dumps({"type": "stop"}))
        while (frame := strict_loads(await ws.recv()))["type"] != "stopped":
            pass
        return frame

    async def go():
        async with websockets.connect(live_server.ws_url) as ws:
            return await stop_after(ws, False), await stop_after(ws, True)

    empty, stepped = run(go())
    for frame, kept in ((empty, False), (stepped, True)):
        assert frame["kept"] is kept
        found = httpx.get(f"{live_server.url}/api/runs/{frame['id']}")
        assert found.status_code == (200 if kept else 404), found.text
    assert httpx.get(f"{live_server.url}/api/runs/{stepped['id']}").json()["status"] == \
        "stopped"


def test_stopped_while_the_network_is_built_answers_when_it_has_ended(live_server,
                                                                     monkeypatch):
    """A large network takes seconds to build and its build is not cut short: the
    `stopped` answer waits for the run's end, and its `kept` is what the store holds."""
    import backproplab.runs.manager as manager

    built = manager.make_engine
    building = threading.Event()

    def slow(*args, **kwargs):
        building.set()
        time.sleep(1.0)  # as a 4096-wide orthogonal initialization, only shorter
        return built(*args, **kwargs)

    monkeypatch.setattr(manager, "make_engine", slow)
    monkeypatch.setattr(manager, "STOP_WAIT_S", 0.1)  # stop gives up waiting first

    async def go():
        async with websockets.connect(live_server.ws_url) as ws:
            await ws.send(json.dumps({"type": "start", "config": LONG}))
            assert await asyncio.to_thread(building.wait, 10)
            await ws.send(json.dumps({"type": "stop"}))
            await ws.send(json.dumps({"type": "ping", "t": 1}))  # answered meanwhile
            frames = []
            while not frames or frames[-1]["type"] != "stopped":
                frames.append(strict_loads(await ws.recv()))
            return frames

    frames = run(go())
    assert [f["type"] for f in frames][0] == "pong"  # the session went on answering
    stopped = frames[-1]
    assert stopped["kept"] is False  # no step was taken: the store holds nothing
    assert httpx.get(f"{live_server.url}/api/runs/{stopped['id']}").status_code == 404


def test_a_new_run_never_drops_the_answers_to_earlier_messages(live_server):
    """pong, stopped and a message's error are never dropped, also when a start
    replaces the run right after them (only the old run's own frames go)."""
    async def go():
        async with websockets.connect(live_server.ws_url) as ws:
            await ws.send(json.dumps({"type": "start", "config": LONG}))
            while strict_loads(await ws.recv())["type"] != "step":
                pass
            for message in ({"type": "ping", "t": 1}, {"type": "start", "config": {"depth": 0}},
                            {"type": "stop"}, {"type": "ping", "t": 2},
                            {"type": "start", "config": {**LONG, "steps": 3}}):
                await ws.send(json.dumps(message))
            got = []
            while not got or got[-1]["type"] != "done":
                got.append(strict_loads(await ws.recv()))
            return got

    got = run(go())
    answers = [(f["type"], f.get("t", f.get("code"))) for f in got
               if f["type"] in ("pong", "stopped", "error")]
    assert answers == [("pong", 1), ("error", "invalid_config"), ("stopped", None),
                       ("pong", 2)], answers


@pytest.mark.parametrize("message,code,words", [
    ({"type": "start", "config": LONG, "paused": "false"}, "bad_message", "true or false"),
    ({"type": "x" * 5000}, "unknown_type", "5002 characters"),
])
def test_a_wrong_message_is_refused_in_short_words(live_server, message, code, words):
    async def go():
        async with websockets.connect(live_server.ws_url) as ws:
            await ws.send(json.dumps(message))
            return strict_loads(await ws.recv()), live_server.manager.active

    frame, active = run(go())
    assert frame["type"] == "error" and frame["code"] == code and words in frame["message"]
    assert len(frame["message"]) < 400 and active == 0


def test_json_nested_too_deep_is_refused_not_a_dropped_connection(live_server):
    deep = '{"type": "ping", "t": ' + "[" * 300 + "]" * 300 + "}"

    async def go():
        async with websockets.connect(live_server.ws_url) as ws:
            await ws.send(deep)
            first = strict_loads(await ws.recv())
            await ws.send(json.dumps({"type": "ping", "t": 3}))  # and the session goes on
            return first, strict_loads(await ws.recv())

    first, pong = run(go())
    assert first["code"] == "bad_json" and "nested more than 64 levels" in first["message"]
    assert pong == {"type": "pong", "t": 3}
    for path in ("/api/runs/import", "/api/report", "/api/tape/inspect"):
        r = httpx.post(f"{live_server.url}{path}", headers={"content-type": "application/json"},
                       content=b'{"environment": ' + b"[" * 300 + b"]" * 300 + b"}")
        assert r.status_code == 422 and "nested more than 64" in r.text, (path, r.text[:200])


def test_a_stopped_run_stops_building_its_network_between_layers(live_server, monkeypatch):
    """A 4096-wide orthogonal layer is a QR of ~10 s: a stop (or a closed tab) ends the
    build at the next layer, not after every layer is drawn."""
    import backproplab.model.init as init

    drawn = []
    draw = init.init_weight

    def slow(*args, **kwargs):
        drawn.append(time.perf_counter())
        time.sleep(0.2)
        return draw(*args, **kwargs)

    monkeypatch.setattr(init, "init_weight", slow)

    async def go():
        async with websockets.connect(live_server.ws_url) as ws:
            await ws.send(json.dumps({"type": "start", "config": {**LONG, "depth": 40}}))
            while not drawn:
                await asyncio.sleep(0.01)
            stop = time.perf_counter()
            await ws.send(json.dumps({"type": "stop"}))
            while (frame := strict_loads(await ws.recv()))["type"] != "stopped":
                pass
            return frame, time.perf_counter() - stop

    frame, took = run(go())
    assert frame["kept"] is False and took < 2.0, took  # 41 layers would be 8 s
    assert len(drawn) < 10
