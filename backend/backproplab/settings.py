"""Every limit and switch of the server, from BACKPROPLAB_* environment variables."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .runs.store import default_data_dir


def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


class Settings(BaseSettings):
    """Safe defaults; override with e.g. BACKPROPLAB_MAX_JOBS=4."""

    model_config = SettingsConfigDict(env_prefix="BACKPROPLAB_")

    max_jobs: int = Field(default_factory=lambda: max(1, _cores()), ge=1, le=256,
                          description="training jobs running at once, all clients together")
    torch_threads: int = Field(default_factory=lambda: 1, ge=1, le=256,
                               description="torch threads per job (jobs × threads ≤ cores)")
    compute_budget: float = Field(2e11, gt=0, description="max depth·width²·batch·steps")
    max_steps_seconds: float = Field(600.0, gt=0, description="wall-clock cap per run")
    frame_rate: float = Field(20.0, gt=0, le=240, description="step frames per second per client")
    max_message_bytes: int = Field(65536, ge=1024, description="largest WebSocket message")
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024,
                                description="largest HTTP request body (imports)")
    max_connections: int = Field(200, ge=1, description="uvicorn --limit-concurrency")
    max_watched_runs: int = Field(16, ge=1, description="watched runs (pushed by "
                                                       "backproplab.watch) kept in memory")
    data_dir: str = Field(default_factory=default_data_dir,
                          description='where the run store lives (":memory:" keeps nothing)')
    max_store_bytes: int = Field(2 * 1024**3, ge=1024 * 1024,
                                 description="run store cap: the oldest unnamed runs go first")
    store_sync: Literal["normal", "full"] = Field(
        "normal", description="SQLite synchronous: normal survives a killed process, "
                              "full also a power cut (an fsync per step)")
    send_timeout: float = Field(10.0, gt=0,
                                description="close a socket whose send blocks this long")
    allowed_origins: list[str] = Field(default_factory=list,
                                       description="extra WebSocket origins (same origin always)")
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
                                                      "here (empty: in memory)")
