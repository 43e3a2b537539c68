"""Every limit and switch of the server, from BACKPROPLAB_* environment variables."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .runs.budget import default_sessions, machine_memory
from .runs.store import default_data_dir


def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


class Settings(BaseSettings):
    """Safe defaults, sized from the machine; override with e.g. BACKPROPLAB_WORKERS=4."""

    model_config = SettingsConfigDict(env_prefix="BACKPROPLAB_")

    max_sessions: int = Field(default_factory=lambda: default_sessions(machine_memory()),
                              ge=1, le=100_000,
                              description="live and headless runs admitted at once; over it: "
                                          "HTTP 429, WebSocket close 1013 with a retry time")
    workers: int = Field(default_factory=_cores, ge=1, le=256,
                         description="threads that take turns running the admitted runs' "
                                     "steps (plus one kept for small, interactive runs)")
    max_run_bytes: int = Field(default_factory=lambda: machine_memory() // 8, ge=1 << 20,
                               description="estimated peak memory of one run, phase diagram "
                                           "or spectrum; over it: HTTP 422 / an error frame")
    max_total_bytes: int = Field(default_factory=lambda: machine_memory() // 2, ge=1 << 20,
                                 description="sum of the estimates over all admitted work; "
                                             "over it: wait and retry (429 / 1013)")
    torch_threads: int = Field(default_factory=lambda: 1, ge=1, le=256,
                               description="torch threads per job (workers × threads ≤ cores)")
    compute_budget: float = Field(2e11, gt=0, description="max depth·width²·batch·steps")
    max_steps_seconds: float = Field(600.0, gt=0,
                                     description="compute time a run may use (its own steps)")
    max_request_seconds: float = Field(60.0, gt=0,
                                       description="wall-clock cap of a phase diagram or "
                                                   "Jacobian comparison request")
    frame_rate: float = Field(20.0, gt=0, le=240, description="step frames per second per client")
    max_message_bytes: int = Field(65536, ge=1024, description="largest WebSocket message")
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024,
                                description="largest HTTP request body (imports)")
    max_connections: int = Field(200, ge=1,
                                 description="HTTP requests in progress at once (503 over it); "
                                             "WebSockets are counted apart")
    max_websockets: int = Field(1000, ge=1, description="open WebSockets (1013 over it)")
    max_watched_runs: int = Field(16, ge=1, description="watched runs (pushed by "
                                                       "backproplab.watch) the Watch page "
                                                       "lists, newest first")
    data_dir: str = Field(default_factory=default_data_dir,
                          description='where the run store lives (":memory:" keeps nothing)')
    max_store_bytes: int = Field(2 * 1024**3, ge=1024 * 1024,
                                 description="run store cap: the oldest unnamed runs go first")
    store_sync: Literal["normal", "full"] = Field(
        "normal", description="SQLite synchronous: normal survives a killed process, "
                              "full also a power cut (an fsync per step)")
    send_timeout: float = Field(10.0, gt=0,
                                description="drop a client that reads nothing this long")
    allowed_origins: list[str] = Field(default_factory=list,
                                       description="extra origins (same origin always)")
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "::1", "testserver"],
        description='Host headers accepted, against DNS rebinding ("*" accepts any)')
    # experiments (paper reproductions)
    experiment_workers: int = Field(0, ge=0, le=256,
                                    description="local processes per experiment "
                                                "(0: the server's worker thread)")
    ray_address: str = Field("", description="run experiments as Ray tasks on this cluster "
                                             "('auto' or host:port; empty: not on Ray)")
    max_experiments: int = Field(1, ge=1, le=64, description="experiments running at once")
    experiment_cache_dir: str = Field("", description="keep experiment results as files "
                                                      "here (empty: beside the run store, "
                                                      'in data_dir/experiments; ":memory:" '
                                                      "keeps them in memory only)")
