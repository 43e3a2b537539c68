"""GET /api/memory: the typed report (tape, torch and JAX meters), bounded depths,
refusals in words, and no waiting behind a compile measurement."""

import threading

import pytest
from fastapi.testclient import TestClient

from backproplab.api.app import create_app
from backproplab.api.routes import memory as route
from backproplab.engines import memory
from backproplab.settings import Settings

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(Settings())) as c:
        yield c


def test_report_shape_and_current_point(client):
    got = client.get("/api/memory", params={"depth": 12, "width": 8, "batch_size": 4,
                                            "checkpoint": "every", "checkpoint_every": 3})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["depths"] == memory.depth_grid() and body["capped"] is None
    assert set(body["strategies"]) == {"none", "sqrt", "every"} and body["every"] == 3
    for s in body["strategies"].values():
        assert len(s["peak_bytes"]) == len(body["depths"]) == len(s["torch"]["peak_bytes"])
        assert {"slope", "forward_ops", "extra_forward", "time_s"} <= set(s)
    assert body["strategies"]["none"]["slope"] == pytest.approx(1.0, abs=0.1)
    assert body["current"]["depth"] == 12 and body["current"]["strategy"] == "every"
    # the current point is measured: the tape's 'every' pass at depth 12, by itself
    spec = route._key(route.run_config({"depth": 12, "width": 8, "batch_size": 4,
                                        "checkpoint": "every", "checkpoint_every": 3},
                                       Settings()).to_spec())
    alone, _ = memory.tape_pass(memory.strategy_spec(spec, "every", 12, 3))
    assert body["current"]["peak_bytes"] == alone.peak_bytes
    assert [r["k"] for r in body["microbatches"]] == [1, 2, 4]
    # JAX's meter beside them, measured the same way for the current point
    assert body["engines"] == ["numpy", "torch", "jax"] and "jax.vjp" in body["jax_meter"]
    assert body["strategies"]["none"]["jax"]["slope"] == pytest.approx(1.0, abs=0.1)
    jax_alone, _ = memory.jax_pass(memory.strategy_spec(spec, "every", 12, 3))
    assert body["current"]["jax_peak_bytes"] == jax_alone.peak_bytes
    assert all(r["jax_max_rel_diff"] < 1e-5 for r in body["microbatches"])  # float32
    assert "/api/memory" in client.get("/openapi.json").json()["paths"]


def test_depths_capped_by_the_compute_budget(client, monkeypatch):
    monkeypatch.setattr(route, "MAX_MEMORY_WORK", 4.5e9)
    got = client.get("/api/memory", params={"depth": 4, "width": 512, "batch_size": 16})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["depths"][-1] < 1000 and "compute budget" in body["capped"]
    total = sum(3 * len(body["engines"]) * memory.pass_work(memory.strategy_spec(
        route.run_config({"width": 512, "batch_size": 16}, Settings()).to_spec(),
        "none", d, 4), d) for d in body["depths"])
    assert total <= route.MAX_MEMORY_WORK


@pytest.mark.parametrize("params,words", [
    ({"depth": 1, "width": 2048, "batch_size": 2048, "steps": 1}, "too wide to measure"),
    ({"checkpoint": "every", "checkpoint_every": 0}, "checkpoint_every"),
    ({"checkpoint": "segments"}, "checkpoint"),
    ({"delta_clip": -1}, "delta_clip"),
])
def test_refusals_say_why(client, params, words):
    got = client.get("/api/memory", params=params)
    assert got.status_code == 422
    assert words in got.text


def test_memory_does_not_wait_for_a_compile_measurement(client, monkeypatch):
    from backproplab.api.routes import compile as compile_route

    started, release = threading.Event(), threading.Event()
    real = compile_route.analyze

    def slow(key, check):
        started.set()
        release.wait(120)
        return real(key, check=check)

    monkeypatch.setattr(compile_route, "analyze", slow)
    compiled = {}
    params = {"depth": 5, "width": 3, "batch_size": 2}  # measured by no other test
    waiter = threading.Thread(target=lambda: compiled.update(
        got=client.get("/api/compile", params=params)))
    waiter.start()
    try:
        assert started.wait(60)
        got = client.get("/api/memory", params=params)
        assert got.status_code == 200, got.text
        assert waiter.is_alive()  # the compile measurement still held
    finally:
        release.set()
        waiter.join(120)
    assert compiled["got"].status_code == 200
