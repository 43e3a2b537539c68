"""A class in front of one server (default settings, 127.0.0.1).

1. 50 live clients at depth 20, width 128 stream at once: every one must receive
   frames, each at least 2 frames/s, while /api/health keeps p95 ≤ 100 ms.
2. Two heavy runs train (torch, depth 100, width 512, batch 32; steps of 100 ms and
   more): a new small run's first frame, p95 ≤ 100 ms over 20 new runs.

    python benchmarks/classroom.py [--clients 50 --seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import time

import httpx
import numpy as np
import websockets

from _server import Server
from _timing import machine, table

CLASS_RUN = {"depth": 20, "width": 128, "steps": 2000}
HEAVY = {"engine": "torch", "depth": 100, "width": 512, "batch_size": 32, "steps": 200}
SMALL = {"depth": 20, "width": 128, "steps": 50}


def ms(values, q):
    return float(np.percentile(values, q)) * 1e3 if values else float("nan")


async def health_probe(url: str, stop: asyncio.Event, times: list[float]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            await client.get("/api/health")
            times.append(time.perf_counter() - t0)
            await asyncio.sleep(0.05)


async def a_class(server: Server, clients: int, seconds: float):
    """Frames per second of each client over the window after its first frame."""
    first: list[float | None] = [None] * clients
    frames = [0] * clients
    refused = [0]
    health: list[float] = []
    stop = asyncio.Event()
    end = [0.0]

    async def client(i: int) -> None:
        try:
            async with websockets.connect(server.ws_url, max_size=None, open_timeout=30) as ws:
                await ws.send(json.dumps({"type": "start",
                                          "config": {**CLASS_RUN, "seed": i}}))
                while not stop.is_set():
                    try:
                        msg = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                    except TimeoutError:
                        continue
                    if msg["type"] == "step":
                        if first[i] is None:
                            first[i] = time.perf_counter()
                        elif time.perf_counter() < end[0]:
                            frames[i] += 1
                    elif msg["type"] == "error":
                        raise RuntimeError(msg["message"])
        except websockets.ConnectionClosed as exc:
            if exc.rcvd and exc.rcvd.code == 1013:
                refused[0] += 1

    t0 = time.perf_counter()
    end[0] = t0 + seconds
    prober = asyncio.create_task(health_probe(server.url, stop, health))
    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks, prober)
    rates = [frames[i] / (end[0] - first[i]) if first[i] else 0.0 for i in range(clients)]
    to_first = [f - t0 for f in first if f is not None]
    return rates, refused[0], health, to_first


async def beside_heavy(server: Server, new_runs: int = 20):
    """Two heavy runs stream; then new small runs one after another."""
    heavies = [await websockets.connect(server.ws_url, max_size=None) for _ in range(2)]
    for ws in heavies:
        await ws.send(json.dumps({"type": "start", "config": HEAVY}))
    heavy_first = []
    t0 = time.perf_counter()
    for ws in heavies:  # the heavy runs are stepping before we measure
        while json.loads(await ws.recv())["type"] != "step":
            pass
        heavy_first.append(time.perf_counter() - t0)
    drains = [asyncio.create_task(_drain(ws)) for ws in heavies]
    times = []
    health: list[float] = []
    stop = asyncio.Event()
    prober = asyncio.create_task(health_probe(server.url, stop, health))
    for i in range(new_runs):
        async with websockets.connect(server.ws_url, max_size=None) as ws:
            t0 = time.perf_counter()
            await ws.send(json.dumps({"type": "start", "config": {**SMALL, "seed": i}}))
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] == "step":
                    break
                if msg["type"] == "error":
                    raise RuntimeError(msg["message"])
            times.append(time.perf_counter() - t0)
        await asyncio.sleep(0.2)
    stop.set()
    await prober
    for task in drains:
        task.cancel()
    for ws in heavies:
        await ws.close()
    return times, health, heavy_first


async def _drain(ws) -> None:
    while True:
        await ws.recv()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with Server() as server:  # default settings
        rates, refused, health, to_first = asyncio.run(
            a_class(server, args.clients, args.seconds))
    with Server() as server:
        times, health2, heavy_first = asyncio.run(beside_heavy(server))
    receiving = sum(r > 0 for r in rates)
    print(f"# classroom — {datetime.date.today()} — {machine()}; default settings")
    print(table(["measure", "value", "goal"], [
        [f"{args.clients} live clients (depth 20, width 128): receiving frames",
         f"{receiving} of {args.clients} (refused {refused})", "all"],
        ["frames/s per client: min / median / max",
         f"{min(rates):.1f} / {np.median(rates):.1f} / {max(rates):.1f}", "min ≥ 2"],
        ["time to first frame, all clients started at once: p50 / max s",
         f"{np.median(to_first):.2f} / {max(to_first):.2f}", "—"],
        ["/api/health while they stream: p50 / p95 ms",
         f"{ms(health, 50):.1f} / {ms(health, 95):.1f}", "p95 ≤ 100"],
        ["two heavy torch runs (depth 100, width 512, batch 32): first frames at s",
         " / ".join(f"{t:.1f}" for t in heavy_first), "—"],
        ["beside them, a new small run's first frame: p50 / p95 ms (20 runs)",
         f"{ms(times, 50):.1f} / {ms(times, 95):.1f}", "p95 ≤ 100"],
        ["/api/health beside the heavy runs: p50 / p95 ms",
         f"{ms(health2, 50):.1f} / {ms(health2, 95):.1f}", "p95 ≤ 100"],
    ]))


if __name__ == "__main__":
    main()
