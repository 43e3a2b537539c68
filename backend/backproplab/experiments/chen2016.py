"""Chen, Xu, Zhang, Guestrin 2016, "Training Deep Nets with Sublinear Memory Cost":
the peak bytes the tape saves for the backward pass against depth, without and with
√L checkpointing (the tape's own meter), and the forward work it costs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import Experiment, check, task
from .figures import COLORS, panels

MODES = {"no checkpointing": "none", "√L checkpointing": "sqrt"}
PUBLISHED_SLOPE = {"no checkpointing": 1.0, "√L checkpointing": 0.5}
SOURCE = ("Chen et al. 2016, abstract: \"we design an algorithm that costs O(√n) memory to "
          "train a n layer network, with only the computational cost of an extra forward "
          "pass per mini-batch.\" (without it, memory is O(n))")


def loglog_slope(depths: list[int], values: list[float]) -> float:
    """Least-squares slope of ln value over ln depth."""
    return float(np.polyfit(np.log(depths), np.log(values), 1)[0])


def tasks(quick: bool, seed: int) -> list[dict[str, Any]]:
    # perfect squares, so √L segments of √L layers each (no rounding wobble)
    depths = [16, 36, 64, 100] if quick else [16, 36, 64, 100, 144, 196, 256]
    width = 32 if quick else 64
    return [task("memory", f"depth {depth}, {label}", config={
        "depth": depth, "width": width, "activation": "tanh", "init": "xavier_normal",
        "dataset": "gaussian", "input_dim": width, "batch_size": 32, "steps": 1,
        "dtype": "float64", "checkpoint": mode, "seed": seed})
        for label, mode in MODES.items() for depth in depths]


def analyze(tasks: list[dict], results: list[dict], quick: bool):
    series: dict[str, tuple[list[int], list[dict]]] = {label: ([], []) for label in MODES}
    for t, r in zip(tasks, results, strict=True):
        label = next(lab for lab, mode in MODES.items()
                     if mode == t["params"]["config"]["checkpoint"])
        series[label][0].append(t["params"]["config"]["depth"])
        series[label][1].append(r)
    memory, ops = [], []
    slopes = {}
    for k, (label, (depths, rs)) in enumerate(series.items()):
        peak = [r["peak_bytes"] for r in rs]
        slopes[label] = loglog_slope(depths, peak)
        memory.append({"type": "scatter", "mode": "lines+markers",
                       "name": f"{label} (slope {slopes[label]:.2f})", "x": depths,
                       "y": [p / 2**20 for p in peak], "line": {"color": COLORS[k]}})
        ref = PUBLISHED_SLOPE[label]
        memory.append({"type": "scatter", "mode": "lines", "name": f"∝ L^{ref:g}",
                       "x": depths, "y": [peak[-1] / 2**20 * (d / depths[-1]) ** ref
                                          for d in depths],
                       "line": {"color": COLORS[k], "dash": "dash"}})
        ops.append({"type": "scatter", "mode": "lines+markers", "name": f"{label} forward ops",
                    "x": depths, "y": [r["forward_ops"] for r in rs],
                    "line": {"color": COLORS[k]}})
    figure = panels("Memory saved for the backward pass against depth", [
        {"title": "peak saved activations (log-log)", "x": "depth L", "y": "MiB",
         "xlog": True, "ylog": True, "traces": memory},
        {"title": "forward primitive applications per step", "x": "depth L",
         "y": "forward ops", "traces": ops}])
    checks = [check(f"{label}: slope of log peak bytes over log depth",
                    PUBLISHED_SLOPE[label], slopes[label], 0.1, SOURCE) for label in MODES]
    plain, ckpt = (series[label][1] for label in MODES)
    # the loss ops outside the stack are not recomputed: compare the deepest network
    ratio = ckpt[-1]["forward_ops"] / plain[-1]["forward_ops"]
    checks.append(check("√L checkpointing: forward work / plain (one extra forward pass)",
                        2.0, ratio, 0.1, SOURCE))
    if not all(math.isfinite(c["measured"]) for c in checks):
        raise ValueError("a memory measurement was not finite")
    return [figure], checks


EXPERIMENT = Experiment(
    name="chen2016", title="Chen et al. 2016: sublinear memory by √L checkpointing",
    paper="T. Chen, B. Xu, C. Zhang, C. Guestrin. Training Deep Nets with Sublinear "
          "Memory Cost. arXiv:1604.06174, 2016.",
    summary="Peak bytes saved for the backward pass against depth on the NumPy tape, "
            "without and with √L checkpointing (slopes 1 and ½ on log-log axes), and the "
            "one extra forward pass it costs.",
    tasks=tasks, analyze=analyze)
