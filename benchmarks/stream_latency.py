"""Against a real server on 127.0.0.1 (default settings; depth 20, width 128, CPU):
the time from sending `update` to the first `step` frame of the new run, p50 and
p95 over 100 updates, sent back to back as a slider drag sends them (the next
update the moment the new run's first frame arrives) and with a 50 ms pause
between them; then 50 concurrent streaming clients: frames per client and
/api/health latency while they stream.

    python benchmarks/stream_latency.py
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time

import httpx
import numpy as np
import websockets

from _server import Server
from _timing import machine, table

CONFIG = {"depth": 20, "width": 128, "steps": 2000}


def pct(values, q):
    return float(np.percentile(values, q)) * 1e3


async def update_latency(ws_url: str, n: int = 100, pause: float = 0.05) -> list[float]:
    out = []
    async with websockets.connect(ws_url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "config": CONFIG}))
        run_id = None
        for i in range(n + 1):
            cfg = {**CONFIG, "seed": i}
            t0 = time.perf_counter()
            run_id = None  # frames of the previous run may still be buffered here
            if i:
                await ws.send(json.dumps({"type": "update", "config": cfg}))
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] == "error":
                    raise RuntimeError(msg["message"])
                if msg["type"] == "run":
                    run_id = msg["id"]
                elif msg["type"] == "step" and msg["run"] == run_id:
                    break
            if i:
                out.append(time.perf_counter() - t0)
            if pause:
                await asyncio.sleep(pause)  # let a few frames stream
    return out


async def many_clients(server: Server, clients: int = 50, seconds: float = 10.0):
    counts = [0] * clients
    refused = [0]
    stop = time.perf_counter() + seconds

    async def client(i):
        try:
            async with websockets.connect(server.ws_url, max_size=None) as ws:
                await ws.send(json.dumps({"type": "start", "config": {**CONFIG, "seed": i}}))
                while time.perf_counter() < stop:
                    try:
                        msg = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                    except TimeoutError:
                        continue
                    counts[i] += msg["type"] == "step"
        except websockets.ConnectionClosed as exc:
            if exc.rcvd and exc.rcvd.code == 1013:
                refused[0] += 1

    async def health():
        times = []
        async with httpx.AsyncClient(base_url=server.url) as c:
            await asyncio.sleep(1.0)
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                await c.get("/api/health")
                times.append(time.perf_counter() - t0)
                await asyncio.sleep(0.05)
        return times

    *_, times = await asyncio.gather(*(client(i) for i in range(clients)), health())
    return counts, refused[0], times


def main() -> None:
    rows = []
    with Server() as server:
        asyncio.run(update_latency(server.ws_url, 10, 0.0))  # warm up
        lat = asyncio.run(update_latency(server.ws_url, 100, 0.0))
        rows.append(["update → first step frame, back to back (100 updates)",
                     f"{pct(lat, 50):.1f}", f"{pct(lat, 95):.1f}", "p50 ≤ 20, p95 ≤ 50"])
        lat = asyncio.run(update_latency(server.ws_url, 100, 0.05))
        rows.append(["update → first step frame, 50 ms apart (100 updates)",
                     f"{pct(lat, 50):.1f}", f"{pct(lat, 95):.1f}", "—"])
        counts, refused, health = asyncio.run(many_clients(server))
        rows.append(["/api/health with 50 streaming clients", f"{pct(health, 50):.1f}",
                     f"{pct(health, 95):.1f}", "p95 ≤ 100"])
    print(f"# stream_latency — {datetime.date.today()} — {machine()}; numpy engine, "
          f"depth 20, width 128, default settings")
    print(table(["measure", "p50 ms", "p95 ms", "goal"], rows))
    print(f"50 clients over 10 s: frames per client min {min(counts)}, median "
          f"{int(np.median(counts))}, max {max(counts)}; clients receiving no frame: "
          f"{sum(c == 0 for c in counts)}; refused: {refused}")


if __name__ == "__main__":
    main()
