"""Load, a hostile mix and a soak against one server on 127.0.0.1 (default limits).

Load: 50 concurrent WebSocket clients, each running several short runs; a run
either completes or is refused with close code 1013 (then the client backs off
and retries); none may hang. /api/health latency is sampled throughout.
Hostile: 20 normal live clients stream while a huge run is posted, a measured phase
diagram is asked for, two clients start Jacobian spectra and leave, and one client
never reads. Goals: resident memory under the configured bound, /api/health p95
≤ 100 ms, every normal client keeps receiving frames, every hostile request is
refused or finishes within its limit.
Soak: consecutive runs through the live endpoint, each on a fresh connection:
resident memory (start, peak, end), threads and file descriptors.

    python benchmarks/load.py [--clients 50 --runs 3 --hostile 30 --soak 500]
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

from _server import Server, raw_websocket
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


NORMAL = {"depth": 4, "width": 32, "steps": 20000, "batch_size": 16}
SPECTRUM = {"depth": 30, "width": 1024, "batch_size": 1, "steps": 100,
            "record": {"jacobian_every": 1, "jacobian_topk": 512}}
NEVER_READS = {"depth": 200, "width": 8, "steps": 3000}


async def hostile(server: Server, normal: int, seconds: float):
    """Normal clients' frame gaps, /api/health, RSS, and each hostile outcome."""
    stop = asyncio.Event()
    gaps = [0.0] * normal
    frames = [0] * normal
    health: list[float] = []
    rss: list[float] = []
    outcomes: dict[str, str] = {}

    async def normal_client(i: int) -> None:
        async with websockets.connect(server.ws_url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "start", "config": {**NORMAL, "seed": i}}))
            last = None
            while not stop.is_set():
                try:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                except TimeoutError:
                    continue
                if msg["type"] == "step":
                    now = time.perf_counter()
                    if last is not None:
                        gaps[i] = max(gaps[i], now - last)
                    last = now
                    frames[i] += 1
            if last is not None:
                gaps[i] = max(gaps[i], time.perf_counter() - last)

    async def probe() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                await c.get("/api/health")
                health.append(time.perf_counter() - t0)
                rss.append(server.rss_mb())
                await asyncio.sleep(0.1)

    async def big_run() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            t0 = time.perf_counter()
            r = await c.post("/api/runs", json={"depth": 1000, "width": 4096, "batch_size": 1,
                                                "steps": 0})
            outcomes["huge run (depth 1000, width 4096)"] = \
                f"{r.status_code} in {time.perf_counter() - t0:.2f} s: {r.json()['detail'][:60]}…"

    async def measured_phase() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=300) as c:
            t0 = time.perf_counter()
            r = await c.get("/api/phase", params={"grid": 64, "width": 128, "depth": 20,
                                                  "batch": 16, "measured": "true"})
            outcomes["measured phase (grid 64, width 128, depth 20, batch 16)"] = \
                f"{r.status_code} after {time.perf_counter() - t0:.1f} s (limit 60 s)"

    async def spectrum_leaver(k: int) -> None:
        t0 = time.perf_counter()
        async with websockets.connect(server.ws_url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "start", "config": {**SPECTRUM, "seed": k}}))
            while json.loads(await ws.recv())["type"] != "run":
                pass
            await asyncio.sleep(0.5)  # inside step 0's spectrum
        outcomes[f"Jacobian leaver {k + 1} (depth 30, width 1024, top 512)"] = \
            f"left after {time.perf_counter() - t0:.1f} s"

    async def never_reads() -> None:
        sock = await asyncio.to_thread(raw_websocket, server.port,
                                       {"type": "start", "config": NEVER_READS})
        t0 = time.perf_counter()

        def wait_closed() -> str:
            sock.settimeout(60)
            try:
                while sock.recv(1 << 16):
                    time.sleep(0.5)  # reads a little, late: never keeps up
                return "closed by the server"
            except ConnectionResetError:
                return "reset by the server"
            except TimeoutError:
                return "still open after 60 s"
        how = await asyncio.to_thread(wait_closed)
        sock.close()
        outcomes["client that never reads (depth 200 frames)"] = \
            f"{how} after {time.perf_counter() - t0:.1f} s (send timeout 10 s)"

    tasks = [asyncio.create_task(normal_client(i)) for i in range(normal)]
    prober = asyncio.create_task(probe())
    await asyncio.sleep(2.0)
    hostile_tasks = [asyncio.create_task(t) for t in (
        big_run(), measured_phase(), spectrum_leaver(0), spectrum_leaver(1), never_reads())]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks, prober)
    await asyncio.wait(hostile_tasks, timeout=120)
    return gaps, frames, health, rss, outcomes


async def soak(server: Server, n: int):
    rss, threads, fds = [server.rss_mb()], [server.threads()], [server.fds()]
    outcomes = {"done": 0, "refused": 0, "error": 0}
    for i in range(n):
        outcome, _ = await one_run(server.ws_url, i)
        outcomes[outcome] += 1
        if i % 25 == 24:
            rss.append(server.rss_mb())
    await asyncio.sleep(1.0)  # let the last jobs end
    rss.append(server.rss_mb())
    threads.append(server.threads())
    fds.append(server.fds())
    return outcomes, rss, threads, fds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hostile", type=float, default=30.0, help="seconds of the mix")
    parser.add_argument("--soak", type=int, default=500)
    args = parser.parse_args()
    with Server() as server:  # default limits
        stats, elapsed, health = asyncio.run(load(server, args.clients, args.runs))
    with Server() as server:
        limits = httpx.get(f"{server.url}/api/info").json()["limits"]
        base_rss = server.rss_mb()
        gaps, frames, h_health, h_rss, hostile_outcomes = asyncio.run(
            hostile(server, 20, args.hostile))
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
    hh = np.array(h_health) * 1e3
    bound = base_rss + limits["max_total_bytes"] / 2**20  # finished records are on disk
    print(f"\n# hostile mix — 20 normal clients ({NORMAL}) for {args.hostile:g} s")
    print(table(["measure", "value", "goal"], [
        ["server RSS MB start / peak", f"{base_rss:.0f} / {max(h_rss):.0f}",
         f"under {bound:.0f} (start + MAX_TOTAL_BYTES)"],
        ["/api/health p50 / p95 / max ms",
         f"{np.percentile(hh, 50):.1f} / {np.percentile(hh, 95):.1f} / {hh.max():.1f}",
         "p95 ≤ 100"],
        ["normal clients receiving frames", f"{sum(f > 0 for f in frames)} of {len(frames)}",
         "all"],
        ["longest gap between frames, worst client s", f"{max(gaps):.2f}", "—"],
        ["frames per normal client min / median",
         f"{min(frames)} / {int(np.median(frames))}", "—"],
    ] + [[name, value, "refused or within its limit"]
         for name, value in hostile_outcomes.items()]))
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
