"""Bounded by construction: a fault suite against real servers on 127.0.0.1.

Memory is read from /proc (a server in a subprocess for resident memory, so the
test process does not blur it), times with the wall clock, counts from the run
manager of an in-process server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import websockets

from _server import Server, raw_websocket
from conftest import make_server, open_page, strict_loads

SMALL = {"depth": 3, "width": 8, "steps": 5, "batch_size": 8}
LONG = {"depth": 4, "width": 16, "steps": 100000, "batch_size": 8}
SPECTRUM = {"depth": 30, "width": 1024, "batch_size": 1, "steps": 100,
            "record": {"jacobian_every": 1, "jacobian_topk": 512}}


def run(coro, timeout: float = 90):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Subprocess(Server):
    """`backproplab serve` in its own process: its resident memory is its own."""

    def status(self, key: str) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        raise KeyError(key)

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.stderr = err.decode(errors="replace")


def wait_idle(server: Subprocess, limit: float = 5.0) -> float:
    """Seconds until the server's CPU time stops growing: the start of the first run
    of three 50 ms samples that each add at most one clock tick (10 ms)."""
    t0 = time.perf_counter()
    samples = [(0.0, server.cpu_seconds())]
    while time.perf_counter() - t0 < limit:
        time.sleep(0.05)
        samples.append((time.perf_counter() - t0, server.cpu_seconds()))
        recent = samples[-4:]
        if len(recent) == 4 and recent[-1][1] - recent[0][1] <= 0.03:
            return recent[0][0]
    return float("inf")


def first(frames_wanted: set, ws) -> dict:
    async def go():
        while True:
            frame = strict_loads(await ws.recv())
            if frame["type"] in frames_wanted:
                return frame
            assert frame["type"] != "error", frame
    return go()


# --- 1. the cost model ------------------------------------------------------------------
SHAPES = [
    {"depth": 20, "width": 1024, "batch_size": 64, "steps": 3},
    {"depth": 4, "width": 2048, "batch_size": 32, "steps": 3, "optimizer": "adam"},
    {"depth": 36, "width": 512, "batch_size": 512, "steps": 2, "checkpoint": "sqrt"},
    {"depth": 50, "width": 256, "batch_size": 1024, "steps": 2, "norm": "layernorm"},
    {"depth": 8, "width": 1024, "batch_size": 8, "steps": 2, "dtype": "float64",
     "record": {"jacobian_every": 1, "jacobian_topk": 64}},
    {"depth": 10, "width": 1024, "batch_size": 64, "steps": 3, "engine": "torch"},
]
PEAK_SCRIPT = """
import json, sys, threading
from backproplab.engines import iter_steps, make_engine
from backproplab.api.schemas import validate_config
from backproplab.runs.budget import run_cost
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
cfg = json.loads(sys.argv[1])
warm = validate_config({**cfg, "depth": 2, "width": 8, "batch_size": 4, "steps": 2}).to_spec()
for _ in iter_steps(warm, threading.Event(), make_engine(warm, threads=1)):
    pass
spec = validate_config(cfg).to_spec()
base = status("VmRSS")
assert status("VmHWM") - base < 50e6  # the warm-up's peak is far below what follows
for _ in iter_steps(spec, threading.Event(), make_engine(spec, threads=1)):
    pass
cost = run_cost(spec)
print(json.dumps({"growth": status("VmHWM") - base,
                  "estimate": cost.bytes}))
"""


@pytest.mark.parametrize("config", SHAPES, ids=lambda c: "-".join(
    f"{k}{v}" for k, v in c.items() if k in ("depth", "width", "engine", "optimizer",
                                             "checkpoint", "norm", "dtype")))
def test_memory_estimate_is_within_2x_of_the_measured_peak(config):
    if config.get("engine") == "torch":
        pytest.importorskip("torch")
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, json.dumps(config)],
                         capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = result["estimate"] / result["growth"]
    assert 0.5 <= ratio <= 2.0, result


OTHER_PEAK_SCRIPT = """
import sys, numpy as np
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
from backproplab.engines.inspect import jacobian_modes
from backproplab.model.spec import RunSpec
from backproplab.runs.budget import jacobian_modes_cost, phase_cost
from backproplab.theory import phase
if sys.argv[1] == "modes":
    jacobian_modes(RunSpec(depth=2, width=4, input_dim=4, dataset="gaussian", steps=0))
    base = status("VmRSS")
    jacobian_modes(RunSpec(depth=50, width=256, input_dim=256, dataset="gaussian", steps=0))
    estimate = jacobian_modes_cost(50, 256, 256).bytes
else:
    phase.measured("tanh", np.array([1.0]), np.array([0.0]), 2, 4, 2)
    base = status("VmRSS")
    phase.measured("tanh", np.linspace(0.5, 4, 24), np.linspace(0, 0.5, 24), 20, 128, 16)
    estimate = phase_cost(24, 20, 128, 16, True).bytes
print(status("VmHWM") - base, estimate)
"""


@pytest.mark.parametrize("what", ["modes", "phase"])
def test_request_memory_estimates_are_within_2x(what):
    out = subprocess.run([sys.executable, "-c", OTHER_PEAK_SCRIPT, what], capture_output=True,
                         text=True, timeout=300, check=True)
    growth, estimate = map(int, out.stdout.split())
    assert 0.5 <= estimate / growth <= 2.0, (growth, estimate)


def test_one_huge_run_is_refused_before_anything_is_allocated_many_small_ones_fit():
    with Subprocess(max_run_bytes=1 << 30) as server:
        rss0 = server.status("VmRSS")
        with httpx.Client(base_url=server.url, timeout=30) as client:
            huge = client.post("/api/runs", json={"depth": 1000, "width": 4096,
                                                  "batch_size": 1, "steps": 0})
            assert huge.status_code == 422
            detail = huge.json()["detail"]
            assert "201 GB" in detail and "1.07 GB" in detail
            assert "BACKPROPLAB_MAX_RUN_BYTES" in detail
            mid = client.post("/api/runs", json={"depth": 20, "width": 4096,
                                                 "batch_size": 1, "steps": 0})
            assert mid.status_code == 422 and "3.83 GB" in mid.json()["detail"]
            ids = [client.post("/api/runs", json={**LONG, "steps": 2000}).json()["id"]
                   for _ in range(40)]
            assert len(set(ids)) == 40  # admitted, all of them, none refused for cores
            time.sleep(1.0)
            statuses = [client.get(f"/api/runs/{i}").json() for i in ids]
            assert sum(s["steps_recorded"] > 0 for s in statuses) >= 30  # they take turns
            for run_id in ids:  # stopped (200) or, one that finished meanwhile, deleted (204)
                assert client.delete(f"/api/runs/{run_id}").status_code in (200, 204)
            # none of them trains on: each is stopped and kept, or gone
            for run_id in ids:
                got = client.get(f"/api/runs/{run_id}")
                assert got.status_code == 404 or got.json()["status"] != "running", got.text
            assert client.get("/api/health").status_code == 200
        assert server.status("VmHWM") - rss0 < 400e6


def test_the_server_wide_bound_asks_to_retry_with_the_time():
    with make_server(max_total_bytes=40 << 20, max_run_bytes=30 << 20) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            # ~22 MB of parameters and gradients (recorded steps are on disk, not counted)
            config = {**LONG, "depth": 8, "width": 512, "steps": 5000}
            first = client.post("/api/runs", json=config)
            assert first.status_code == 202
            second = client.post("/api/runs", json=config)
            assert second.status_code == 429
            assert "BACKPROPLAB_MAX_TOTAL_BYTES" in second.json()["detail"]
            assert second.headers["retry-after"] == "5"
            client.delete(f"/api/runs/{first.json()['id']}")
            assert client.post("/api/runs", json=config).status_code == 202
        server.manager.shutdown()


# --- 2. everything cancellable -----------------------------------------------------------
def test_delete_stops_a_headless_run_and_its_cpu():
    with Subprocess() as server, httpx.Client(base_url=server.url, timeout=30) as client:
        run_id = client.post("/api/runs", json={**LONG, "width": 256, "depth": 10,
                                                        "steps": 20000}).json()["id"]
        time.sleep(0.8)
        t0 = time.perf_counter()
        stopped = client.delete(f"/api/runs/{run_id}")
        assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
        assert time.perf_counter() - t0 < 0.5
        assert wait_idle(server) < 0.5
        assert client.get(f"/api/runs/{run_id}").json()["steps_recorded"] > 0  # kept
        assert client.delete("/api/runs/nope").status_code == 404


def test_a_client_leaving_stops_a_jacobian_spectrum_within_100ms(live_server):
    async def go():
        async with websockets.connect(live_server.ws_url) as ws:
            await ws.send(json.dumps({"type": "start", "config": SPECTRUM}))
            await first({"run"}, ws)
            await asyncio.sleep(0.3)  # inside step 0's spectrum (several seconds of work)
            job = next(iter(live_server.manager.live))
            assert job.steps_recorded == 0
        return job, time.perf_counter()

    job, left = run(go())
    assert job.join(2.0)
    assert job.status == "cancelled"
    # cancellation is checked after every product on 128 columns; the longest piece of
    # work that cannot be interrupted is one QR of the (width × k) block (~25 ms on an
    # idle core, several times that on a loaded machine): measured here, beside the test
    import numpy as np

    block = np.random.default_rng(0).standard_normal((1024, 512)).astype(np.float32)
    t0 = time.perf_counter()
    np.linalg.qr(block)
    one_qr = time.perf_counter() - t0
    assert job.ended_at - job.stopped_at < max(0.1, 2 * one_qr), one_qr
    assert job.ended_at - left < 0.5  # the whole way: close handshake, loop, job
    assert live_server.manager.ledger.bytes == 0


def test_two_spectrum_leavers_block_nobody():
    with make_server() as server:
        async def go():
            for _ in range(2):
                async with websockets.connect(server.ws_url) as ws:
                    await ws.send(json.dumps({"type": "start", "config": SPECTRUM}))
                    await first({"run"}, ws)
            t0 = time.perf_counter()
            async with websockets.connect(server.ws_url) as ws:
                await ws.send(json.dumps({"type": "start", "config": SMALL}))
                await first({"step"}, ws)
            return time.perf_counter() - t0

        assert run(go()) < 1.0
        deadline = time.perf_counter() + 2
        while server.manager.active and time.perf_counter() < deadline:
            time.sleep(0.01)
        assert server.manager.active == 0


def test_a_spectrum_stops_at_the_compute_time_limit_inside_the_step():
    with make_server(max_steps_seconds=0.5) as server:
        async def go():
            async with websockets.connect(server.ws_url) as ws:
                await ws.send(json.dumps({"type": "start", "config": SPECTRUM}))
                t0 = time.perf_counter()
                frame = await first({"error"}, ws)
                return frame, time.perf_counter() - t0

        frame, took = run(go())
        assert "compute-time limit of 0.5 s" in frame["message"]
        assert "BACKPROPLAB_MAX_STEPS_SECONDS" in frame["message"]
        assert took < 4.0  # building the network, then not the ~20 s of the spectrum


def test_a_phase_diagram_stops_when_its_http_client_disconnects():
    query = "grid=64&width=128&depth=20&batch=16&measured=true"
    with Subprocess() as server:
        warm = httpx.get(f"{server.url}/api/phase?grid=2&width=4&depth=2&measured=true")
        assert warm.status_code == 200  # torch imported: what follows is the diagram's work
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(f"GET /api/phase?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            time.sleep(1.0)
        assert wait_idle(server) < 0.5  # stopped within a layer, not ~60 s later
        # and a measured diagram holds one grid row at a time, not the whole grid
        rss0 = server.status("VmRSS")
        r = httpx.get(f"{server.url}/api/phase?grid=8&width=128&depth=20&batch=16"
                      "&measured=true", timeout=60)
        assert r.status_code == 200 and len(r.json()["measured"]["measured_chi1"]) == 8
        assert server.status("VmHWM") - rss0 < 150e6


def test_an_analytic_phase_diagram_has_a_time_limit():
    with make_server(max_request_seconds=1.0) as server:
        t0 = time.perf_counter()
        r = httpx.get(f"{server.url}/api/phase", params={"activation": "gelu", "grid": 64,
                                                         "depth": 1000}, timeout=30)
        took = time.perf_counter() - t0
        if r.status_code == 200:  # computed fast enough: within its limit, also fine
            assert took < 1.5
        else:
            assert r.status_code == 503 and "BACKPROPLAB_MAX_REQUEST_SECONDS" in r.text
            assert took < 2.0


def test_cli_ctrl_c_stops_the_run_and_keeps_what_was_recorded(tmp_path):
    out = tmp_path / "run.json"
    proc = subprocess.Popen([sys.executable, "-m", "backproplab.cli", "run", "--depth", "4",
                             "--width", "16", "--steps", "100000", "--quiet", "--out",
                             str(out)], stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:  # until it trains (imports take seconds on a busy box)
        time.sleep(0.5)
        with open(f"/proc/{proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        if (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") > 4.0:
            break
    proc.send_signal(signal.SIGINT)
    code, said = proc.wait(60), proc.stderr.read()  # stderr read once: it is a stream
    assert code == 130, said  # stopped, and the steps so far written
    assert b"interrupted" in said and b"Traceback" not in said
    record = strict_loads(out.read_text())
    assert record["steps"] and record["config"]["steps"] == 100000


def test_cli_refuses_a_run_over_the_memory_limit_unless_lifted(tmp_path):
    args = [sys.executable, "-m", "backproplab.cli", "run", "--depth", "1000", "--width",
            "4096", "--steps", "0", "--batch-size", "1", "--out", str(tmp_path / "r.json")]
    refused = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "BACKPROPLAB_MAX_RUN_BYTES" in refused.stderr
    assert "--no-limits" in refused.stderr
    small = subprocess.run(args[:4] + ["--depth", "3", "--width", "8", "--steps", "2",
                                       "--no-limits", "--out", str(tmp_path / "s.json")],
                           capture_output=True, text=True, timeout=60)
    assert small.returncode == 0, small.stderr


# --- 3. no computation from another site ------------------------------------------------
def test_compute_heavy_requests_cannot_come_from_another_site(live_server):
    url = f"{live_server.url}/api/phase?grid=4&depth=3"
    cross = httpx.get(url, headers={"sec-fetch-site": "cross-site"})
    assert cross.status_code == 403 and "cross-site" in cross.json()["detail"]
    assert httpx.get(url, headers={"origin": "http://evil.example"}).status_code == 403
    assert httpx.post(f"{live_server.url}/api/runs", json=SMALL,
                      headers={"origin": "http://evil.example"}).status_code == 403
    assert httpx.get(url, headers={"sec-fetch-site": "same-origin"}).status_code == 200
    assert httpx.get(url).status_code == 200  # curl and scripts send neither header
    posted = httpx.post(f"{live_server.url}/api/phase", json={"grid": 4, "depth": 3})
    assert posted.status_code == 200 and len(posted.json()["analytic"]["chi1"]) == 4


def test_origin_check_includes_the_scheme(live_server):
    host = live_server.url.removeprefix("http://")

    async def go(origin):
        try:
            async with websockets.connect(live_server.ws_url, origin=origin) as ws:
                await ws.send(json.dumps({"type": "ping"}))
                return strict_loads(await ws.recv())["type"]
        except websockets.InvalidStatus as exc:  # refused before the handshake completes
            return exc.response.status_code

    assert run(go(f"https://{host}")) == 403
    assert run(go(f"http://{host}")) == "pong"
    assert httpx.get(f"{live_server.url}/api/phase?grid=4&depth=3",
                     headers={"origin": f"https://{host}"}).status_code == 403


# --- 4. slow consumers -------------------------------------------------------------------


def test_a_client_that_reads_nothing_is_cut_off_and_its_job_stops():
    with make_server(send_timeout=1.0, frame_rate=50) as server:
        big = {**LONG, "depth": 200, "width": 8, "steps": 3000}  # ~200 kB frames
        sock = raw_websocket(int(server.url.rsplit(":", 1)[1]), {"type": "start",
                                                                  "config": big})
        try:
            t0 = time.perf_counter()
            while not server.manager.live and time.perf_counter() - t0 < 10:
                time.sleep(0.01)
            job = next(iter(server.manager.live))
            assert job.join(15.0), "the job of a client that reads nothing must stop"
            took = time.perf_counter() - t0
            assert job.status == "cancelled" and took < 10
            sock.settimeout(5)  # the server has closed the TCP connection: what was in
            with contextlib.suppress(ConnectionResetError):  # flight drains, then it ends
                while sock.recv(1 << 20):
                    pass
            assert server.manager.ledger.sessions == 0
        finally:
            sock.close()


# --- 5. records bounded in bytes: the run store's cap ------------------------------------
def test_finished_records_are_bounded_in_bytes():
    """Finished runs live in the run store, not in memory; over BACKPROPLAB_MAX_STORE_BYTES
    the oldest go first, the newest stay."""
    limit = 1 << 20
    with make_server(max_store_bytes=limit, data_dir=":memory:") as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        ids = []
        for seed in range(8):
            ids.append(client.post("/api/runs", json={**LONG, "steps": 60, "seed": seed})
                       .json()["id"])
            job = server.manager.get(ids[-1])
            assert job is None or job.join(20)
        assert not server.manager.jobs  # memory holds running jobs only
        kept = [i for i in ids if client.get(f"/api/runs/{i}").status_code == 200]
        assert kept == ids[-len(kept):] and len(kept) < len(ids)  # the oldest went first
        store = server.manager.store
        sizes = [store.get(i)["bytes"] for i in kept]
        assert store.total_bytes() == sum(sizes) <= limit
        assert sum(sizes) + max(sizes) > 0.9 * limit  # kept up to the cap, not fewer
        assert client.get(f"/api/runs/{ids[0]}").status_code == 404


# --- 6. the smaller items ----------------------------------------------------------------
def test_small_items(live_server):
    url = live_server.url
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/api/phase", params={"seed": 2**64}).status_code == 422
        r = client.post("/api/runs", json={**SMALL, "depth": True})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "depth"]
        assert client.get("/static/__init__.py").status_code == 404
        assert client.get("/static/js/transport.js").status_code == 200
        huge_key = "k" * 60_000
        r = client.get(f"/api/theory?{huge_key}=1")
        assert r.status_code == 422 and len(r.content) < 2000
        for bad in (b'{"schema": NaN}', b'{"schema": -Infinity}', b'{"x": 1e400}'):
            r = client.post("/api/runs/import", content=bad,
                            headers={"content-type": "application/json"})
            (first,) = r.json()["detail"]  # as every 422: a list, its type json_invalid
            assert r.status_code == 422 and "not JSON" in first["msg"]
            assert first["type"] == "json_invalid" and first["loc"] == ["body"]

    async def ws_rejects():
        async with websockets.connect(live_server.ws_url) as ws:
            await ws.send('{"type": "start", "config": {"lr": NaN}}')
            return strict_loads(await ws.recv())["code"]

    assert run(ws_rejects()) == "bad_json"  # the same parser on both entry points


def test_chunked_body_over_the_limit_is_413():
    with make_server(max_body_bytes=4096) as server:
        def chunks():
            for _ in range(10):
                yield b" " * 1024

        r = httpx.post(f"{server.url}/api/runs/import", content=chunks(),
                       headers={"content-type": "application/json"})
        assert r.status_code == 413 and "BACKPROPLAB_MAX_BODY_BYTES" in r.text


def test_a_large_import_does_not_stall_the_event_loop(live_server):
    step = {"step": 0, "loss": 1.0, "time_s": 0.0, "layers": [
        {"index": 0, "z_mean": 0.0, "z_std": 1.0, "a_mean": 0.0, "a_std": 1.0,
         "saturated_frac": 0.0, "dead_frac": 0.0, "delta_norm": 1.0, "grad_w_norm": 1.0,
         "grad_b_norm": 1.0, "weight_norm": 1.0, "update_ratio": 0.0,
         "a_hist": {"lo": 0, "hi": 1, "counts": [1] * 24},
         "delta_log_hist": {"lo": 0, "hi": 1, "counts": [1] * 24}, "delta_sample": [0.5] * 8}
        for _ in range(2)]}
    body = json.dumps({"schema": "backproplab.run/1", "config": {"depth": 1},
                       "steps": [{**step, "step": i} for i in range(20000)]}).encode()
    assert len(body) > 20e6

    async def go():
        async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as client:
            baseline = []
            for _ in range(50):  # how this machine answers right now, without the import
                t0 = time.perf_counter()
                await client.get("/api/health")
                baseline.append(time.perf_counter() - t0)
                await asyncio.sleep(0.02)
            post = asyncio.create_task(client.post(
                "/api/runs/import", content=body, headers={"content-type": "application/json"}))
            worst = 0.0
            while not post.done():
                t0 = time.perf_counter()
                await client.get("/api/health")
                worst = max(worst, time.perf_counter() - t0)
                await asyncio.sleep(0.02)
            return (await post).status_code, worst, max(baseline)

    status, worst, baseline = run(go())
    assert status == 200
    # parsed and validated in another process: on the loop this took seconds
    assert worst < max(0.5, 3 * baseline), (worst, baseline)


def test_jacobians_and_stepper_walks_at_once_leave_the_other_routes_answering(live_server):
    """A script firing the largest Jacobian-modes request 20 times at once, and 60
    stepper walks of new shapes: one Jacobian is measured at a time, a few wait, the
    rest are told when to retry (429); the walks queue on two threads of their own;
    meanwhile a synchronous route (the runs list) keeps answering."""
    async def go():
        async with httpx.AsyncClient(base_url=live_server.url, timeout=120) as client:
            # one walk first: the process's first imports jax, which holds the GIL ~1 s
            assert (await client.post("/api/tape/inspect", json={"depth": 1})).status_code \
                == 200
            jacobians = [asyncio.create_task(client.post(
                "/api/tape/jacobian-modes",
                json={"depth": 50, "width": 256, "input_dim": 256, "seed": i}))
                for i in range(20)]
            walks = [asyncio.create_task(client.post("/api/tape/inspect", json={
                "depth": 1 + i % 5, "width": 1 + (i // 5) % 6, "batch_size": 1 + i % 4,
                "activation": ("tanh", "relu", "gelu")[i % 3]})) for i in range(60)]
            await asyncio.sleep(0.3)
            took = []
            for _ in range(10):
                t0 = time.perf_counter()
                r = await client.get("/api/runs", params={"limit": 1})
                took.append(time.perf_counter() - t0)
                assert r.status_code == 200
                await asyncio.sleep(0.1)
            answers = [await t for t in jacobians]
            return took, answers, [(await t).status_code for t in walks]

    took, answers, walks = run(go(), timeout=180)
    # in the shared thread pool, the 20 Jacobians held this route for 9–18 s (and the
    # median answer near 1 s); now the first answers wait ~1–2 s at most under a full
    # suite's load (walks start and the test's own client shares this process's GIL)
    assert max(took) < 5 and sorted(took)[5] < 0.5, took
    codes = [a.status_code for a in answers]
    assert set(codes) <= {200, 429} and codes.count(429) >= 10, codes
    refused = next(a for a in answers if a.status_code == 429)
    assert "retry" in refused.json()["detail"] and refused.headers["retry-after"]
    assert set(walks) == {200}


def test_exported_records_keep_the_overflow_marker(live_server):
    overflow = {"activation": "tanh", "depth": 300, "width": 32, "init": "normal",
                "sigma_w": 20.0, "steps": 3, "batch_size": 8}

    async def go():
        async with websockets.connect(live_server.ws_url) as ws:
            await ws.send(json.dumps({"type": "start", "config": overflow}))
            return await first({"done"}, ws)

    done = run(go())
    record = strict_loads(httpx.get(f"{live_server.url}/api/runs/{done['id']}/export").text)
    marked = [s for s in record["steps"] if "overflow" in s]
    assert marked and marked[0]["overflow"]["layer"] >= 0
    back = httpx.post(f"{live_server.url}/api/runs/import", json=record)
    assert back.status_code == 200 and "overflow" in back.json()["steps"][marked[0]["step"]]


def test_idle_websockets_do_not_turn_page_requests_away():
    with Subprocess() as server:
        async def go():
            sockets = [await websockets.connect(server.ws_url) for _ in range(220)]
            try:
                async with httpx.AsyncClient(base_url=server.url) as client:
                    codes = [(await client.get("/api/health")).status_code for _ in range(20)]
            finally:
                for ws in sockets:
                    await ws.close()
            return codes

        assert run(go()) == [200] * 20


def test_no_log_noise_from_refusals_and_leavers():
    with Subprocess(max_sessions=1) as server:
        async def go():
            try:
                async with websockets.connect(server.ws_url, origin="http://evil.example"):
                    pass
            except websockets.InvalidStatus:
                pass
            async with websockets.connect(server.ws_url) as a:
                await a.send(json.dumps({"type": "start", "config": LONG}))
                await first({"step"}, a)
                try:
                    async with websockets.connect(server.ws_url) as b:
                        await b.send(json.dumps({"type": "start", "config": SMALL}))
                        busy = await first({"error"}, b)
                        await b.recv()
                except websockets.ConnectionClosed as exc:
                    assert exc.rcvd.code == 1013 and "retry in 5 s" in exc.rcvd.reason
                assert busy["code"] == "busy" and busy["retry_after"] == 5
            for _ in range(20):  # leave mid-run, over and over
                async with websockets.connect(server.ws_url) as ws:
                    await ws.send(json.dumps({"type": "start", "config": LONG}))
                    frame = await first({"step", "error"}, ws)
                    if frame["type"] == "error":  # the previous leaver's place: not yet free
                        assert frame["code"] == "busy"
                        await asyncio.sleep(0.1)

        run(go())
    for noise in ("ASGI callable returned without", "Task was destroyed", "Traceback",
                  "Exception in ASGI"):
        assert noise not in server.stderr, server.stderr[-3000:]


def test_fair_share_keeps_a_small_run_responsive_beside_heavy_ones():
    with make_server() as server:
        heavy = {"engine": "numpy", "depth": 60, "width": 512, "batch_size": 64,
                 "steps": 150}

        async def go():
            heavies = [await websockets.connect(server.ws_url) for _ in range(3)]
            for ws in heavies:
                await ws.send(json.dumps({"type": "start", "config": heavy}))
            for ws in heavies:
                await first({"step"}, ws)
            times = []
            async with websockets.connect(server.ws_url) as ws:
                for seed in range(5):
                    t0 = time.perf_counter()
                    await ws.send(json.dumps({"type": "update",
                                              "config": {**SMALL, "seed": seed}}))
                    while True:
                        frame = strict_loads(await ws.recv())
                        if frame["type"] == "step" and frame["step"] == 0:
                            break
                    times.append(time.perf_counter() - t0)
            heavy_steps = [j.step_seconds for j in server.manager.live if j.spec.depth == 60]
            for ws in heavies:
                await ws.close()
            return sorted(times), heavy_steps

        times, heavy_steps = run(go(), 180)
        # a new small run's first frame waits for no heavy step (3 of them, 2 workers)
        assert times[len(times) // 2] < 0.25 * min(heavy_steps), (times, heavy_steps)


def test_paused_runs_hold_no_worker():
    with make_server(workers=1) as server:  # two threads: one for any run, one for light
        async def go():
            paused = [await websockets.connect(server.ws_url) for _ in range(3)]
            for ws in paused:
                await ws.send(json.dumps({"type": "start", "config": LONG, "paused": True}))
                await first({"run"}, ws)
            async with websockets.connect(server.ws_url) as ws:
                await ws.send(json.dumps({"type": "start", "config": SMALL}))
                done = await first({"done"}, ws)
            counts = [j.steps_recorded for j in server.manager.live]
            for ws in paused:
                await ws.close()
            return done["type"], counts

        kind, counts = run(go())
        assert kind == "done" and counts == [0, 0, 0]  # paused before step 0, as asked


# --- the page, when the server is full ---------------------------------------------------
@pytest.mark.browser
def test_a_full_server_is_explained_in_words_and_the_page_retries(browser):
    with make_server(max_sessions=1) as server, open_page(browser, console_errors=False) as page:
        taken = httpx.post(f"{server.url}/api/runs", json=LONG).json()["id"]
        page.goto(f"{server.url}/#depth=3&width=8&steps=2000&batch_size=8")
        page.wait_for_function("() => document.getElementById('conn').textContent"
                               ".includes('trying again in')", timeout=30000)
        text = page.locator("#conn").text_content()
        assert "the server is running 1 run, its limit (setting " \
               "BACKPROPLAB_MAX_SESSIONS) — trying again in" in text, text
        seconds = int(text.rsplit("in ", 1)[1].split()[0])
        assert 1 <= seconds <= 5
        httpx.delete(f"{server.url}/api/runs/{taken}")  # a place comes free
        page.wait_for_function("() => document.getElementById('plot-flow').data?.[0]"
                               "?.x?.length > 0", timeout=30000)
        assert "trying again" not in page.locator("#conn").text_content()
        assert page.errors == []
