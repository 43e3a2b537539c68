"""A real `backproplab serve` killed with SIGKILL mid-run, then started again on the same
run store: the finished runs intact byte for byte, the interrupted one marked with its
steps, the database sound; a graceful restart keeps everything."""

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest
import websockets

from conftest import strict_loads

pytestmark = pytest.mark.slow
SMALL = {"depth": 3, "width": 8, "steps": 6, "batch_size": 8}
OVERFLOW = {"activation": "tanh", "depth": 300, "width": 32, "init": "normal", "sigma_w": 20.0,
            "dtype": "float32", "steps": 3, "batch_size": 8}
LONG = {"depth": 6, "width": 16, "steps": 100000, "batch_size": 8}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """`python -m backproplab.cli serve` in its own process on a free port."""

    def __init__(self, data_dir):
        self.port = free_port()
        env = {**os.environ, "BACKPROPLAB_DATA_DIR": str(data_dir), "BACKPROPLAB_MAX_SESSIONS": "4",
               "BACKPROPLAB_FRAME_RATE": "50"}
        self.proc = subprocess.Popen([sys.executable, "-m", "backproplab.cli", "serve",
                                      "--host", "127.0.0.1", "--port", str(self.port)],
                                     env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.time() + 60
        while True:
            try:
                if self.client.get("/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"server did not start: {self.proc.stderr.read()!r}")
            time.sleep(0.1)

    def wait_done(self, run_id):
        deadline = time.time() + 60
        while time.time() < deadline:
            body = self.client.get(f"/api/runs/{run_id}").json()
            if body["status"] != "running":
                return body
            time.sleep(0.05)
        raise AssertionError("run did not finish")

    def stop(self, sig=signal.SIGTERM):
        self.client.close()
        self.proc.send_signal(sig)
        self.proc.wait(30)


def stream_steps(url, config, count, while_open):
    """Start a live run, read `count` step frames, then call `while_open()` with the
    socket still open; returns (run id, frames, what while_open returned)."""
    async def go():
        async with websockets.connect(url.replace("http", "ws") + "/api/live") as ws:
            await ws.send(json.dumps({"type": "start", "config": config}))
            run_id, frames = None, []
            while len(frames) < count:
                frame = strict_loads(await ws.recv())
                if frame["type"] == "run":
                    run_id = frame["id"]
                elif frame["type"] == "step":
                    frames.append(frame)
            return run_id, frames, await asyncio.to_thread(while_open)
    return asyncio.run(asyncio.wait_for(go(), 60))


def test_sigkill_mid_run_then_restart(tmp_path):
    server = Served(tmp_path)
    finished = {}
    for config in (SMALL, OVERFLOW):
        run_id = server.client.post("/api/runs", json=config).json()["id"]
        assert server.wait_done(run_id)["status"] == "done"
        finished[run_id] = server.client.get(f"/api/runs/{run_id}/export").content
    exported = strict_loads(finished[run_id].decode())
    imported = server.client.post("/api/runs/import", content=finished[run_id],
                                  headers={"content-type": "application/json"})
    finished[imported.headers["x-run-id"]] = imported.content  # stored as it was answered
    assert strict_loads(imported.text) == exported
    assert server.client.patch(f"/api/runs/{run_id}", json={"name": "tanh σ_w=20"}) \
        .status_code == 200

    # a live run streaming over the WebSocket is killed (SIGKILL) while it trains
    def kill():
        listed = server.client.get("/api/runs", params={"source": "live"}).json()
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(30)
        return listed

    live_id, frames, stored_before_kill = stream_steps(server.url, LONG, 20, kill)
    server.client.close()
    assert server.proc.returncode == -signal.SIGKILL

    database = tmp_path / "runs.sqlite3"
    check = sqlite3.connect(database)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()

    again = Served(tmp_path)
    for rid, body in finished.items():
        assert again.client.get(f"/api/runs/{rid}/export").content == body  # byte for byte
    listed = again.client.get("/api/runs").json()
    by_id = {r["id"]: r for r in listed["runs"]}
    assert set(by_id) == set(finished) | {live_id} and listed["total"] == 4
    assert by_id[run_id]["name"] == "tanh σ_w=20"
    marker = next(s["overflow"] for s in exported["steps"] if "overflow" in s)
    assert by_id[run_id]["summary"]["first_nonfinite"] == marker
    live = again.client.get(f"/api/runs/{live_id}").json()
    assert live["status"] == "interrupted"
    steps = live["record"]["steps"]
    # every step a client was shown had been committed before it was sent
    assert len(steps) >= max(f["step"] for f in frames) + 1 >= 20
    assert [s["step"] for s in steps] == list(range(len(steps)))
    for frame in frames:
        assert steps[frame["step"]]["loss"] == frame["loss"]
        assert steps[frame["step"]]["layers"][3]["delta_norm"] == frame["layers"][3]["delta_norm"]
    assert stored_before_kill["runs"][0]["id"] == live_id
    assert stored_before_kill["runs"][0]["status"] == "running"
    again.stop()  # a graceful stop and a restart keep everything as it was

    third = Served(tmp_path)
    assert third.client.get("/api/runs").json()["runs"] == listed["runs"]
    for rid, body in finished.items():
        assert third.client.get(f"/api/runs/{rid}/export").content == body
    third.stop()
