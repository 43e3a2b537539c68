"""Pushing a watched run's steps to a running `backproplab serve`, off the training
thread: a background thread drains a bounded queue and POSTs batches of steps with
the server's secret (stdlib http only). Training never waits on the server: when the
queue is full the oldest queued steps are dropped (the `out` file has them all), and
when the server cannot be reached the pusher says so once and stops."""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from .record import encode_line
from .secret import HEADER

QUEUE_STEPS = 256
BATCH = 32
TIMEOUT_S = 5.0


class PushError(Exception):
    pass


class Pusher:
    def __init__(self, server: str, secret: str, timeout: float = TIMEOUT_S):
        parts = urlsplit(server if "://" in server else f"http://{server}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"server must be a URL like http://127.0.0.1:8000, got {server!r}")
        self.parts, self.secret, self.timeout = parts, secret, timeout
        self.queue: queue.Queue = queue.Queue(QUEUE_STEPS)
        self.run_id: str | None = None
        self.failed: str | None = None
        self.dropped = 0
        self.sent = 0
        self.thread = threading.Thread(target=self._main, name="backproplab-push", daemon=True)
        self.thread.start()

    # --- the training thread ------------------------------------------------------
    def put(self, kind: str, payload: Any) -> None:
        if self.failed:
            return
        item = (kind, payload)
        while True:
            try:
                self.queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    old = self.queue.get_nowait()
                except queue.Empty:
                    continue
                if old[0] == "step":
                    self.dropped += 1
                else:  # never drop the head or the end: put it back, drop the new step
                    self._requeue_front(old)
                    self.dropped += 1
                    return

    def _requeue_front(self, item: tuple) -> None:
        with self.queue.mutex:
            self.queue.queue.appendleft(item)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (up to `timeout` seconds), then stop the thread."""
        with contextlib.suppress(queue.Full):
            self.queue.put(("stop", None), timeout=timeout)
        self.thread.join(timeout)

    # --- the pusher thread --------------------------------------------------------
    def _request(self, method: str, path: str, body: bytes) -> dict:
        p = self.parts
        cls = http.client.HTTPSConnection if p.scheme == "https" else http.client.HTTPConnection
        conn = cls(p.hostname, p.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers={
                "content-type": "application/json", HEADER: self.secret})
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status >= 400:
            try:
                detail = json.loads(data).get("detail")
            except ValueError:
                detail = data[:200].decode("utf-8", "replace")
            raise PushError(f"{response.status}: {detail}")
        return json.loads(data) if data else {}

    def _main(self) -> None:
        while True:
            kind, payload = self.queue.get()
            if kind == "stop":
                return
            if self.failed:
                continue
            try:
                if kind == "head":
                    self.run_id = self._request("POST", "/api/watch/runs",
                                                encode_line(payload))["id"]
                elif kind == "step":
                    steps = [payload]
                    while len(steps) < BATCH:
                        try:
                            more = self.queue.get_nowait()
                        except queue.Empty:
                            break
                        if more[0] != "step":
                            self._requeue_front(more)
                            break
                        steps.append(more[1])
                    self._send_steps(steps)
                elif kind == "end" and self.run_id:
                    self._request("POST", f"/api/watch/runs/{self.run_id}/end",
                                  encode_line(payload))
            except (OSError, PushError, ValueError, KeyError) as exc:
                self.failed = f"{type(exc).__name__}: {exc}"
                print(f"backproplab.watch: cannot push to {self.parts.geturl()} "
                      f"({self.failed}); training goes on, the out file stays complete",
                      file=sys.stderr)

    def _send_steps(self, steps: list) -> None:
        if not self.run_id:
            return
        # steps arrive encoded (one JSON line each, as written to the out file)
        body = b'{"steps":[' + b",".join(s.rstrip(b"\n") for s in steps) + b"]}"
        self._request("POST", f"/api/watch/runs/{self.run_id}/steps", body)
        self.sent += len(steps)
        time.sleep(0)  # let the training thread run between batches
