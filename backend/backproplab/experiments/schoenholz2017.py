"""Schoenholz, Gilmer, Ganguli, Sohl-Dickstein 2017, "Deep Information Propagation"
(ICLR): random tanh networks are trainable when information about their inputs
survives the depth, L ≲ 6ξ_c, with ξ_c the depth scale of the correlation map.

A grid of (σ_w², L) at σ_b² = 0.05 is trained on the digits by SGD for a fixed number
of steps; a cell is trainable when its test accuracy is well above chance. The check
is the fraction of cells where "trainable" agrees with L < 6ξ_c.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..theory import critical_sigma_w2
from .base import Experiment, check, task
from .correlation import xi_c
from .figures import AXIS, STYLE, finite

SIGMA_B2 = 0.05
TRAINABLE_ACCURACY = 0.3  # chance is 0.1 (10 classes)
SOURCE = ("Schoenholz et al. 2017, Sec. 5 and Fig. 5 (training accuracy over (σ_w², L) at "
          "σ_b² = 0.05, with the 6ξ_c line drawn over it): the networks train when "
          "L ≲ 6ξ_c and fail beyond it; published: agreement everywhere (1.0).")


def grid(quick: bool) -> tuple[list[float], list[int], dict[str, Any]]:
    """(σ_w² values, depths, training settings)."""
    if quick:
        return ([1.0, 1.6, 2.2, 3.0, 4.0], [10, 25, 50],
                {"width": 64, "steps": 200})
    return ([float(v) for v in np.round(np.linspace(1.0, 4.0, 12), 4)],
            [10, 20, 30, 40, 55, 70, 85, 100], {"width": 128, "steps": 300})


def tasks(quick: bool, seed: int) -> list[dict[str, Any]]:
    w2s, depths, train = grid(quick)
    return [task("train", f"σ_w²={w2:g}, L={depth}", config={
        "depth": depth, "width": train["width"], "activation": "tanh", "init": "normal",
        "sigma_w": math.sqrt(w2), "sigma_b": math.sqrt(SIGMA_B2), "dataset": "digits",
        "loss": "cross_entropy", "optimizer": "sgd", "lr": 0.003, "batch_size": 32,
        "steps": train["steps"], "seed": seed,
        "record": {"every": train["steps"], "hist_bins": 8, "delta_samples": 0}})
        for depth in depths for w2 in w2s]


def analyze(tasks: list[dict], results: list[dict], quick: bool):
    w2s, depths, train = grid(quick)
    accuracy = np.array([r["test_accuracy"][-1] for r in results]).reshape(len(depths),
                                                                           len(w2s))
    xi = np.array([xi_c("tanh", w2, SIGMA_B2) for w2 in w2s])
    predicted = np.array([[depth < 6 * x for x in xi] for depth in depths])
    trainable = accuracy >= TRAINABLE_ACCURACY
    agreement = float(np.mean(predicted == trainable))
    fine = np.linspace(min(w2s), max(w2s), 121)
    line = [min(6 * xi_c("tanh", float(w2), SIGMA_B2), 10 * max(depths)) for w2 in fine]
    critical = critical_sigma_w2("tanh", SIGMA_B2)
    heat = {"type": "heatmap", "x": w2s, "y": depths, "z": accuracy.tolist(),
            "zmin": 0.0, "zmax": 1.0, "colorscale": "Viridis",
            "colorbar": {"title": {"text": "test accuracy"}}, "name": "test accuracy",
            "hovertemplate": "σ_w² %{x}<br>L %{y}<br>test accuracy %{z:.3f}<extra></extra>"}
    marks = {"type": "scatter", "mode": "markers", "name": "disagrees with L < 6ξ_c",
             "x": [w2s[j] for i in range(len(depths)) for j in range(len(w2s))
                   if predicted[i, j] != trainable[i, j]],
             "y": [depths[i] for i in range(len(depths)) for j in range(len(w2s))
                   if predicted[i, j] != trainable[i, j]],
             "marker": {"symbol": "x", "color": "#D55E00", "size": 9}}
    figure = {"data": [
        heat,
        {"type": "scatter", "mode": "lines", "name": "6ξ_c", "x": fine.tolist(),
         "y": [finite(v) for v in line], "line": {"color": "white", "dash": "dash", "width": 3}},
        {"type": "scatter", "mode": "lines", "name": "ξ_c", "x": fine.tolist(),
         "y": [finite(v / 6) for v in line], "line": {"color": "white", "dash": "dot", "width": 2}},
        {"type": "scatter", "mode": "lines", "name": f"order/chaos σ_w² = {critical:.3g}",
         "x": [critical, critical], "y": [min(depths), max(depths)],
         "line": {"color": "#E69F00"}},
        marks],
        "layout": {"title": {"text": f"Test accuracy after {train['steps']} SGD steps, "
                                     f"width {train['width']}, σ_b² = {SIGMA_B2}"},
                   **STYLE, "height": 460,
                   "xaxis": {**AXIS, "title": {"text": "σ_w²"}},
                   "yaxis": {**AXIS, "title": {"text": "depth L"},
                             "range": [min(depths) - 5, max(depths) + 5]},
                   # the white lines need a dark legend to be seen there
                   "legend": {"orientation": "h", "y": -0.22, "bgcolor": "#555",
                              "font": {"color": "white"}},
                   "margin": {"l": 60, "r": 20, "t": 60, "b": 50}}}
    checks = [check("fraction of cells where trainable (test accuracy ≥ "
                    f"{TRAINABLE_ACCURACY}) agrees with L < 6ξ_c", 1.0, agreement, 0.2,
                    SOURCE)]
    return [figure], checks


EXPERIMENT = Experiment(
    name="schoenholz2017", title="Schoenholz et al. 2017: trainable depth L < 6ξ_c",
    paper="S. S. Schoenholz, J. Gilmer, S. Ganguli, J. Sohl-Dickstein. Deep Information "
          "Propagation. ICLR 2017.",
    summary="tanh, σ_b² = 0.05: test accuracy on the digits over a (σ_w², depth) grid "
            "after a fixed number of SGD steps, with ξ_c and the 6ξ_c line over it.",
    tasks=tasks, analyze=analyze)
