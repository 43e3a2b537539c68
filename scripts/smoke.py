"""Smoke test of a running server: health, then one live WebSocket run to completion."""

import asyncio
import json
import sys
import time

import httpx
import websockets


def main(url: str) -> None:
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(f"{url}/api/health", timeout=2).json() == {"status": "ok"}:
                break
        except httpx.HTTPError:
            pass
        if time.time() > deadline:
            raise SystemExit("no /api/health answer within 60 s")
        time.sleep(0.5)
    print("health: ok")

    async def live():
        ws_url = url.replace("http", "ws", 1) + "/api/live"
        async with websockets.connect(ws_url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "start", "config": {
                "depth": 8, "width": 32, "steps": 30, "engine": "torch"}}))
            steps = 0
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if msg["type"] == "error":
                    raise SystemExit(f"run failed: {msg}")
                steps += msg["type"] == "step"
                if msg["type"] == "done":
                    return steps

    print(f"live run: done after {asyncio.run(live())} step frames")
    page = httpx.get(url + "/", timeout=5)
    assert page.status_code == 200 and "backproplab" in page.text
    assert httpx.get(url + "/vendor/plotly.min.js", timeout=10).status_code == 200


if __name__ == "__main__":
    main(sys.argv[1])
