"""Seconds-long measurements (the compiled and memory views): one at a time, a bounded
line of waiters (429 with Retry-After), a time limit, a cache, and a stop that ends the
running one at its next check with a 503 in words."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
from fastapi import FastAPI, Request

from backproplab.api.measuring import Measurement
from conftest import make_server


def app_for(measurement: Measurement, work):
    app = FastAPI()

    @app.get("/m")
    async def measure(request: Request, n: int):
        return await measurement.run(request, n, lambda check: work(n, check))

    return app


def get_all(app, ns: list[int]) -> list[httpx.Response]:
    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            async def one(n, delay):
                await asyncio.sleep(delay)
                return await client.get("/m", params={"n": n}, timeout=30)
            return await asyncio.gather(*(one(n, 0.05 * i) for i, n in enumerate(ns)))
    return asyncio.run(go())


def test_one_at_a_time_and_a_full_line_is_told_when_to_retry():
    running, most = [0], [0]
    lock = threading.Lock()

    def work(n, check):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.3)
        with lock:
            running[0] -= 1
        return {"n": n}

    m = Measurement("test", seconds=30, max_waiting=3)
    answers = get_all(app_for(m, work), [1, 2, 3, 4, 5])
    codes = [r.status_code for r in answers]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    assert [r.json()["n"] for r in answers[:3]] == [1, 2, 3]
    assert most[0] == 1  # never two measurements at once
    assert answers[3].headers["retry-after"] == "5"
    assert "3 test measurements are already asked for" in answers[3].json()["detail"]
    assert m.waiting == 0


def test_a_repeated_network_is_measured_once():
    calls = []

    def work(n, check):
        calls.append(n)
        return {"n": n}

    m = Measurement("test", seconds=30)
    app = app_for(m, work)
    assert [r.json() for r in get_all(app, [7, 7, 8])] == [{"n": 7}, {"n": 7}, {"n": 8}]
    assert [r.json() for r in get_all(app, [7])] == [{"n": 7}]
    assert calls == [7, 8]  # the second 7 waited its turn and found it measured


def test_a_measurement_past_its_time_limit_stops_with_a_503_in_words():
    def work(n, check):
        while True:
            check()
            time.sleep(0.01)

    m = Measurement("test", seconds=0.2)
    start = time.monotonic()
    (answer,) = get_all(app_for(m, work), [1])
    assert answer.status_code == 503 and time.monotonic() - start < 5
    assert "took longer than 0.2 s" in answer.json()["detail"]
    assert "BACKPROPLAB_MAX_REQUEST_SECONDS" in answer.json()["detail"]


def test_stopping_ends_the_running_measurement_and_refuses_new_ones():
    started = threading.Event()

    def work(n, check):
        started.set()
        while True:
            check()
            time.sleep(0.01)

    m = Measurement("test", seconds=60)
    threading.Timer(0.5, lambda: started.wait(10) and m.stop(wait=5)).start()
    (answer,) = get_all(app_for(m, work), [1])
    assert answer.status_code == 503
    assert answer.json()["detail"] == "the server is stopping: the test measurement was " \
                                      "cut short"
    (later,) = get_all(app_for(m, work), [2])
    assert later.status_code == 503 and "stopping" in later.json()["detail"]


def test_a_server_stopping_mid_measurement_answers_503_json_and_stops_within_seconds(
        monkeypatch):
    """The real routes: a compile measurement held in its check loop, the server told to
    stop (what the signal handler of `backproplab serve` does): the client gets a JSON
    503 and the server's thread ends soon after."""
    from backproplab.api.routes import compile as compile_route

    started = threading.Event()

    def endless(key, check):
        started.set()
        while True:
            check()
            time.sleep(0.01)

    monkeypatch.setattr(compile_route, "analyze", endless)
    got = {}
    with make_server() as server:
        asker = threading.Thread(target=lambda: got.update(r=httpx.get(
            f"{server.url}/api/compile", params={"depth": 2, "width": 3, "batch_size": 2},
            timeout=60)))
        asker.start()
        assert started.wait(60)
        server.app.state.stop_measuring()
        asker.join(30)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 15
    assert got["r"].status_code == 503
    assert got["r"].headers["content-type"].startswith("application/json")
    assert "the server is stopping" in got["r"].json()["detail"]


def test_cuda_asked_for_where_there_is_none_is_a_422_that_names_the_device(monkeypatch):
    from backproplab.engines import torch_engine

    monkeypatch.setattr(torch_engine, "cuda_available", lambda: False)  # as on this CPU box
    with make_server() as server:
        answer = httpx.get(f"{server.url}/api/memory", params={"engine": "torch",
                                                               "device": "cuda"}, timeout=60)
    assert answer.status_code == 422
    assert answer.json()["detail"] == "device: device 'cuda' was asked for, but no CUDA " \
                                      "device is available here"


def test_a_push_without_the_secret_is_refused_before_its_body_is_read():
    """A stranger's 20 MB push: 403 from the headers alone, while /api/health answers."""
    import socket

    with make_server() as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            # announce a 20 MB body and send none of it: the answer cannot wait for it
            sock.sendall(b"POST /api/watch/runs/x/steps HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 20000000\r\n\r\n")
            answer = sock.recv(65536).decode("latin-1")
        assert answer.startswith("HTTP/1.1 403")
        assert "needs the server's secret in the X-Backproplab-Secret header" in answer
        wrong = httpx.post(f"{server.url}/api/watch/runs", json={"schema": "x"},
                           headers={"X-Backproplab-Secret": "not it"}, timeout=10)
        assert wrong.status_code == 403
        assert httpx.get(f"{server.url}/api/health", timeout=10).status_code == 200


def test_an_offset_beyond_what_sqlite_counts_is_a_422():
    with make_server() as server:
        answer = httpx.get(f"{server.url}/api/runs", params={"offset": 2**70}, timeout=10)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "offset"]
