"""Glorot & Bengio 2010, "Understanding the difficulty of training deep feedforward
neural networks" (AISTATS): a tanh network with 5 hidden layers at initialization,
"standard" U[−1/√n, 1/√n] weights against their "normalized" (Xavier) ones."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Experiment, check, task
from .figures import COLORS, histogram_curves, panels

INITS = {"standard": "standard", "normalized": "xavier_uniform"}

# Section 4.2.2, on the singular values of J_i = ∂z(i+1)/∂z(i): "With our normalized
# initialization, this ratio is around 0.8 whereas with the standard initialization, it
# drops down to 0.5."
PUBLISHED_MEAN_SV = {"standard": 0.5, "normalized": 0.8}
SOURCE = ("Glorot & Bengio 2010, Sec. 4.2.2: \"With our normalized initialization, this "
          "ratio is around 0.8 whereas with the standard initialization, it drops down "
          "to 0.5.\"")
TOLERANCE = 0.1


def tasks(quick: bool, seed: int) -> list[dict[str, Any]]:
    # the paper's layers have 1000 units; the singular-value means do not depend on width
    width, batch = (256, 32) if quick else (1000, 128)
    return [task("layers_at_init", f"{label} init", examples=4 if quick else 8,
                 config={"depth": 5, "width": width, "activation": "tanh", "init": init,
                         "sigma_w": 1.0, "sigma_b": 0.0, "dataset": "digits",
                         "loss": "cross_entropy", "batch_size": batch, "steps": 0,
                         "dtype": "float64", "seed": seed,
                         "record": {"hist_bins": 40, "delta_samples": 0}})
            for label, init in INITS.items()]


def analyze(tasks: list[dict], results: list[dict], quick: bool):
    by_label = dict(zip(INITS, results, strict=True))
    hist_a = panels("Activation values per layer at initialization (their Fig. 6)", [
        {"title": f"{label} init", "x": "tanh(z(l))", "y": "density",
         "traces": histogram_curves(r["a_hist"], label, legend=k == 0)}
        for k, (label, r) in enumerate(by_label.items())])
    hist_d = panels("Back-propagated gradients per layer at initialization (their Fig. 7)", [
        {"title": f"{label} init", "x": "log₁₀ |δ(l)| = log₁₀ |∂loss/∂z(l)|", "y": "density",
         "traces": histogram_curves(r["delta_log_hist"], label, legend=k == 0)}
        for k, (label, r) in enumerate(by_label.items())])
    sv_traces = []
    for k, (label, r) in enumerate(by_label.items()):
        layers = list(range(1, len(r["jacobian_mean_sv"]) + 1))
        sv_traces.append({"type": "scatter", "mode": "lines+markers", "name": f"{label}",
                          "x": layers, "y": r["jacobian_mean_sv"],
                          "line": {"color": COLORS[k]}})
        sv_traces.append({"type": "scatter", "mode": "lines", "name": f"{label}: paper",
                          "x": [layers[0], layers[-1]], "y": [PUBLISHED_MEAN_SV[label]] * 2,
                          "line": {"color": COLORS[k], "dash": "dash"}})
    sv = panels("Mean singular value of the layer Jacobians ∂a(l+1)/∂a(l)", [
        {"title": "measured (solid) and published (dashed)", "x": "layer l",
         "y": "mean singular value", "traces": sv_traces, "yaxis": {"range": [0, 1.1]}}])
    checks = [check(f"{label} init: mean singular value of ∂a(l+1)/∂a(l)",
                    PUBLISHED_MEAN_SV[label], float(np.mean(r["jacobian_mean_sv"])),
                    TOLERANCE, SOURCE) for label, r in by_label.items()]
    return [hist_a, hist_d, sv], checks


EXPERIMENT = Experiment(
    name="glorot2010", title="Glorot & Bengio 2010: standard vs normalized initialization",
    paper="X. Glorot, Y. Bengio. Understanding the difficulty of training deep feedforward "
          "neural networks. AISTATS 2010.",
    summary="tanh, 5 hidden layers, on the digits: activation and gradient histograms per "
            "layer at initialization and the mean singular value of the layer Jacobians, "
            "U[−1/√n, 1/√n] against Xavier's normalized init.",
    tasks=tasks, analyze=analyze)
