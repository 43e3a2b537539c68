"""Load and soak against one server on 127.0.0.1 (2 cores, default limits).

Load: 50 concurrent WebSocket clients, each running several short runs; a run
either completes or is refused with close code 1013 (then the client backs off
and retries); none may hang. /api/health latency is sampled throughout.
Soak: 500 consecutive runs through the live endpoint, each on a fresh connection:
resident memory (start, peak, end), threads and file descriptors.

    python benchmarks/load.py [--clients 50 --runs 3 --soak 500]
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

RUN = {"depth": 4, "width": 32, "steps": 20, "batch_size": 16}


async def one_run(ws_url: str, seed: int, timeout: float = 60.0) -> tuple[str, int]:
    """('done' | 'refused' | 'error', frames)."""
    frames = 0
    try:
        async with websockets.connect(ws_url, max_size=None, open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "start", "config": {**RUN, "seed": seed}}))
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                frames += 1
                if msg["type"] == "done":
                    return "done", frames
                if msg["type"] == "error" and msg["code"] != "busy":
                    return "error", frames
    except websockets.ConnectionClosed as exc:
        if exc.rcvd and exc.rcvd.code == 1013:
            return "refused", frames
        return "error", frames


async def load(server: Server, clients: int, runs: int):
    stats = {"done": 0, "refused": 0, "error": 0, "frames": 0, "hung": 0}
    health: list[float] = []
    stop = asyncio.Event()

    async def client(i: int):
        for r in range(runs):
            backoff = 0.05
            while True:
                try:
                    outcome, frames = await asyncio.wait_for(one_run(server.ws_url, i * 100 + r),
                                                             120)
                except TimeoutError:
                    stats["hung"] += 1
                    break
                stats[outcome] += 1
                stats["frames"] += frames
                if outcome != "refused":
                    break
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    async def probe_health():
        async with httpx.AsyncClient(base_url=server.url) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                await c.get("/api/health")
                health.append(time.perf_counter() - t0)
                await asyncio.sleep(0.05)

    t0 = time.perf_counter()
    prober = asyncio.create_task(probe_health())
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - t0
    stop.set()
    await prober
    return stats, elapsed, health


async def soak(server: Server, n: int):
    rss, threads, fds = [server.rss_mb()], [server.threads()], [server.fds()]
    outcomes = {"done": 0, "refused": 0, "error": 0}
    for i in range(n):
        outcome, _ = await one_run(server.ws_url, i)
        outcomes[outcome] += 1
        if i % 25 == 24:
            rss.append(server.rss_mb())
    await asyncio.sleep(1.0)  # let the last job threads exit
    rss.append(server.rss_mb())
    threads.append(server.threads())
    fds.append(server.fds())
    return outcomes, rss, threads, fds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--soak", type=int, default=500)
    args = parser.parse_args()
    with Server() as server:  # default limits: max_jobs = cores
        stats, elapsed, health = asyncio.run(load(server, args.clients, args.runs))
    with Server() as server:
        outcomes, rss, threads, fds = asyncio.run(soak(server, args.soak))
    h = np.array(health) * 1e3
    print(f"# load — {datetime.date.today()} — {machine()}; default limits; run = {RUN}")
    print(table(["measure", "value"], [
        ["clients × runs", f"{args.clients} × {args.runs}"],
        ["runs completed", stats["done"]],
        ["refusals (close 1013, retried)", stats["refused"]],
        ["errors / hung", f"{stats['error']} / {stats['hung']}"],
        ["wall time s", f"{elapsed:.1f}"],
        ["runs/s", f"{stats['done'] / elapsed:.2f}"],
        ["frames/s", f"{stats['frames'] / elapsed:.0f}"],
        ["/api/health p50 / p95 / max ms",
         f"{np.percentile(h, 50):.1f} / {np.percentile(h, 95):.1f} / {h.max():.1f}"],
    ]))
    print(f"\n# soak — {args.soak} consecutive runs, one connection each")
    print(table(["measure", "value"], [
        ["outcomes", json.dumps(outcomes)],
        ["RSS MB start / peak / end", f"{rss[0]:.0f} / {max(rss):.0f} / {rss[-1]:.0f}"],
        ["RSS MB after 100, 250, 500 runs",
         " / ".join(f"{rss[min(k, len(rss) - 2)]:.0f}" for k in (4, 10, 20))],
        ["threads start / end", f"{threads[0]} / {threads[-1]}"],
        ["open fds start / end", f"{fds[0]} / {fds[-1]}"],
    ]))


if __name__ == "__main__":
    main()
