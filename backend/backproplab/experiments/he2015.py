"""He, Zhang, Ren, Sun 2015, "Delving deep into rectifiers" (ICCV): a 30-layer ReLU
network, Xavier's init against theirs (Var W = 2/n), on the digits."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import Experiment, check, task
from .figures import COLORS, finite, panels

INITS = {"Xavier": "xavier_normal", "He": "he_normal"}
DEPTH = 30

# Sec. 2.2, eq. (10) for the backward pass: Var[δ] changes by ½ n̂ Var[w] per layer, so
# "a sufficient condition ... is ½ n̂_l Var[w_l] = 1"; Xavier's Var[w] = 1/n gives ½.
PUBLISHED_FACTOR = {"Xavier": 0.5, "He": 1.0}
SOURCE_FACTOR = ("He et al. 2015, Sec. 2.2, eq. (14): the backward signal is scaled by "
                 "½ n̂_l Var[w_l] per layer; 1 with Var[w] = 2/n̂, ½ with Xavier's 1/n̂.")
# Fig. 3 caption: "Our initialization (red) is able to make it converge. But "Xavier"
# (blue) completely stalls - we also verify that its gradients are all diminishing."
SOURCE_CURVES = ("He et al. 2015, Fig. 3 (30-layer ReLU model): \"Our initialization (red) "
                 "is able to make it converge. But 'Xavier' (blue) completely stalls\".")


def per_layer_factor(delta_norms: list[float]) -> float:
    """The per-layer factor of ‖δ‖² backwards: ‖δ(l-1)‖² = f ‖δ(l)‖², so ln ‖δ(l)‖² is
    linear in l with slope −ln f (least squares over the square hidden layers 2..L)."""
    values = np.square(np.asarray(delta_norms[1:], dtype=np.float64))
    if not np.all(np.isfinite(values) & (values > 0)):
        return math.nan
    slope = np.polyfit(np.arange(len(values)), np.log(values), 1)[0]
    return float(np.exp(-slope))


def loss_ratio(losses: list[float], tail: int = 3) -> float:
    """Training loss at the end (mean of the last recorded steps) over the loss at step 0."""
    return float(np.mean(losses[-tail:]) / losses[0])


def tasks(quick: bool, seed: int) -> list[dict[str, Any]]:
    width, steps = (64, 300) if quick else (128, 600)
    return [task("train", f"{label} init", config={
        "depth": DEPTH, "width": width, "activation": "relu", "init": init, "sigma_w": 1.0,
        "sigma_b": 0.0, "dataset": "digits", "loss": "cross_entropy",
        "optimizer": "momentum", "lr": 0.003, "batch_size": 64, "steps": steps,
        "seed": seed, "record": {"every": steps // 30, "hist_bins": 8, "delta_samples": 0}})
        for label, init in INITS.items()]


def analyze(tasks: list[dict], results: list[dict], quick: bool):
    by_label = dict(zip(INITS, results, strict=True))
    flow, curves = [], []
    for k, (label, r) in enumerate(by_label.items()):
        layers = list(range(1, len(r["delta_norm_init"]) + 1))
        d2 = [finite(v * v) for v in r["delta_norm_init"]]
        flow.append({"type": "scatter", "mode": "lines+markers", "name": f"{label} ‖δ(l)‖²",
                     "x": layers, "y": d2, "line": {"color": COLORS[k]}})
        last = d2[-1]
        if last:  # the published factor, anchored at the last hidden layer
            f = PUBLISHED_FACTOR[label]
            flow.append({"type": "scatter", "mode": "lines", "name": f"{label}: {f:g} per layer",
                         "x": layers, "y": [last * f ** (layers[-1] - x) for x in layers],
                         "line": {"color": COLORS[k], "dash": "dash"}})
        curves.append({"type": "scatter", "mode": "lines", "name": f"{label} training loss",
                       "x": r["steps"], "y": [finite(v) for v in r["loss"]],
                       "line": {"color": COLORS[k]}})
        curves.append({"type": "scatter", "mode": "lines", "name": f"{label} test accuracy",
                       "line": {"color": COLORS[k], "dash": "dot"}})
    figure = panels(f"{DEPTH}-layer ReLU: backward signal at initialization, and training", [
        {"title": "‖δ(l)‖² at initialization (paper: dashed)", "x": "layer l",
         "y": "‖δ(l)‖²", "ylog": True, "traces": flow},
        {"title": "training loss (their Fig. 3)", "x": "step", "y": "cross-entropy",
         "traces": [t for t in curves if "loss" in t["name"]]}])
    accuracy = panels("Test accuracy on the held-out digits", [
        {"title": "Xavier stalls at chance, He trains", "x": "step", "y": "test accuracy",
         "traces": [t for t in curves if "accuracy" in t["name"]],
         "yaxis": {"range": [0, 1]}}])
    checks = [check(f"{label} init: per-layer factor of ‖δ‖² at initialization",
                    PUBLISHED_FACTOR[label], per_layer_factor(r["delta_norm_init"]), 0.1,
                    SOURCE_FACTOR) for label, r in by_label.items()]
    checks.append(check("Xavier init: final / initial training loss (stalls: 1)", 1.0,
                        loss_ratio(by_label["Xavier"]["loss"]), 0.05, SOURCE_CURVES))
    checks.append(check("He init: final / initial training loss (converges: well below 1)",
                        1.0, loss_ratio(by_label["He"]["loss"]), 0.5, SOURCE_CURVES,
                        relation="<"))
    return [figure, accuracy], checks


EXPERIMENT = Experiment(
    name="he2015", title="He et al. 2015: Xavier vs He initialization at 30 ReLU layers",
    paper="K. He, X. Zhang, S. Ren, J. Sun. Delving Deep into Rectifiers: Surpassing "
          "Human-Level Performance on ImageNet Classification. ICCV 2015.",
    summary="30-layer ReLU on the digits: the per-layer factor of ‖δ‖² at initialization "
            "(½ with Xavier, 1 with He) and the loss curves (Xavier stalls, He trains).",
    tasks=tasks, analyze=analyze)
