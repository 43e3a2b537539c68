"""Pennington, Schoenholz, Ganguli 2017, "Resurrecting the sigmoid in deep learning
through dynamical isometry" (NeurIPS): spectra of the input-output Jacobian J of a
depth-L stack at initialization, measured by the engines, against free probability.

λ are the eigenvalues of JJᵀ (squared singular values). For a product of L Gaussian
matrices with Var W = 1/n, λ follows the Fuss–Catalan law: mean 1, variance L, and
support edge L^{−L}(L+1)^{L+1}; orthogonal linear layers give λ = 1 exactly; for
critical tanh, σ²_λ/mean² = Σ_l (μ₂/μ₁² − 1 − s₁) with s₁ = −1 (Gaussian), 0
(orthogonal): isometry is reachable with orthogonal weights only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..theory import critical_sigma_w2
from .base import Experiment, check, task
from .figures import COLORS, panels

SIGMA_B2 = 1e-3  # small, so the critical point has a small q*: close to isometry
SOURCE_FC = ("Pennington et al. 2017, Sec. 3 / Pennington et al. 2018: products of L "
             "Gaussian matrices give the Fuss–Catalan law, mean 1, variance L, largest "
             "eigenvalue L⁻ᴸ(L+1)ᴸ⁺¹ as n → ∞.")
SOURCE_ORTH = ("Pennington et al. 2017, Sec. 2.3: orthogonal linear networks are exactly "
               "isometric (all singular values of J equal 1).")
SOURCE_TANH = ("Pennington et al. 2017, eq. (13)–(16): σ²_JJᵀ/mean² = L(μ₂/μ₁² − 1 − s₁), "
               "s₁ = −1 for Gaussian and 0 for orthogonal W, evaluated along the measured "
               "network's q(l) by backproplab.theory.jacobian_moments.")


def fuss_catalan_edge(L: int) -> float:
    return L ** (-L) * (L + 1) ** (L + 1)


def _config(L: int, width: int, act: str, init: str, sigma_w: float, sigma_b: float,
            seed: int) -> dict[str, Any]:
    # depth L+1: the engines' J = ∂a(L+1)/∂a(1) is a product of L layer Jacobians
    return {"depth": L + 1, "width": width, "activation": act, "init": init,
            "sigma_w": sigma_w, "sigma_b": sigma_b, "dataset": "gaussian", "input_dim": width,
            "batch_size": 4, "steps": 0, "dtype": "float64", "seed": seed,
            "record": {"hist_bins": 8, "delta_samples": 0}}


def tasks(quick: bool, seed: int) -> list[dict[str, Any]]:
    width = 200 if quick else 256  # ≤ 256: exact SVD of the whole Jacobian
    depths = [1, 2, 4, 8, 16]
    tanh_depth = 16 if quick else 32
    w2 = critical_sigma_w2("tanh", SIGMA_B2)
    out = [task("spectrum", f"linear Gaussian, L={L}",
                config=_config(L, width, "linear", "normal", 1.0, 0.0, seed)) for L in depths]
    out.append(task("spectrum", f"linear orthogonal, L={depths[-1]}",
                    config=_config(depths[-1], width, "linear", "orthogonal", 1.0, 0.0, seed)))
    for init, label in (("orthogonal", "orthogonal"), ("normal", "Gaussian")):
        out.append(task("spectrum", f"critical tanh, {label}, L={tanh_depth}",
                        config=_config(tanh_depth, 256, "tanh", init, math.sqrt(w2),
                                       math.sqrt(SIGMA_B2), seed)))
    return out


def _moments(sv: list[float]) -> tuple[float, float, float]:
    lam = np.square(np.asarray(sv, dtype=np.float64))
    return float(lam.mean()), float(lam.var() / lam.mean() ** 2), float(lam.max())


def _log_hist(values: np.ndarray, bins: int = 40) -> tuple[list[float], list[float]]:
    logs = np.log10(values[values > 0])
    counts, edges = np.histogram(logs, bins=bins, density=True)
    return ((edges[:-1] + edges[1:]) / 2).tolist(), counts.tolist()


def analyze(tasks: list[dict], results: list[dict], quick: bool):
    linear = [(t, r) for t, r in zip(tasks, results, strict=True)
              if t["label"].startswith("linear Gaussian")]
    orth_linear = next(r for t, r in zip(tasks, results, strict=True)
                       if t["label"].startswith("linear orthogonal"))
    tanh = [(t, r) for t, r in zip(tasks, results, strict=True)
            if t["label"].startswith("critical tanh")]
    Ls = [t["params"]["config"]["depth"] - 1 for t, _ in linear]
    moments = [_moments(r["sv"]) for _, r in linear]
    hists = []
    for k, ((_t, r), L) in enumerate(zip(linear, Ls, strict=True)):
        x, y = _log_hist(np.square(r["sv"]))
        hists.append({"type": "scatter", "mode": "lines", "name": f"L={L}", "x": x, "y": y,
                      "line": {"color": COLORS[k % len(COLORS)]}})
    laws = [
        {"type": "scatter", "mode": "markers", "name": "measured σ²_λ", "x": Ls,
         "y": [m[1] for m in moments], "marker": {"color": COLORS[0]}},
        {"type": "scatter", "mode": "lines", "name": "Fuss–Catalan: σ²_λ = L", "x": Ls, "y": Ls,
         "line": {"color": COLORS[0], "dash": "dash"}},
        {"type": "scatter", "mode": "markers", "name": "measured λ_max", "x": Ls,
         "y": [m[2] for m in moments], "marker": {"color": COLORS[1], "symbol": "diamond"}},
        {"type": "scatter", "mode": "lines", "name": "L⁻ᴸ(L+1)ᴸ⁺¹", "x": Ls,
         "y": [fuss_catalan_edge(L) for L in Ls], "line": {"color": COLORS[1], "dash": "dash"}},
    ]
    linear_fig = panels("Linear Gaussian networks: the spectrum of JJᵀ spreads with depth", [
        {"title": "density of log₁₀ λ (the smallest λ of deep products reach 1e-30)",
         "x": "log₁₀ λ", "y": "density", "traces": hists, "xaxis": {"range": [-8, 2]}},
        {"title": "variance and largest eigenvalue against L", "x": "L", "y": "",
         "xlog": True, "ylog": True, "traces": laws}])
    tanh_traces, tanh_moments = [], []
    for k, (t, r) in enumerate(tanh):
        x, y = _log_hist(np.square(r["sv"]))
        tanh_traces.append({"type": "scatter", "mode": "lines", "name": t["label"], "x": x,
                            "y": y, "line": {"color": COLORS[k]}})
        tanh_moments.append((t, _moments(r["sv"]), r["theory_jacobian"]))
    tanh_fig = panels("Critical tanh: orthogonal weights keep the spectrum together", [
        {"title": f"density of log₁₀ λ (σ_b² = {SIGMA_B2:g}, σ_w² critical)",
         "x": "log₁₀ λ", "y": "density", "traces": tanh_traces}])
    checks = [
        check("linear Gaussian: mean of λ over the depths (Fuss–Catalan: 1)", 1.0,
              float(np.mean([m[0] for m in moments])), 0.1, SOURCE_FC),
        check("linear Gaussian: σ²_λ / L, least squares over the depths (Fuss–Catalan: 1)",
              1.0, float(np.dot(Ls, [m[1] for m in moments]) / np.dot(Ls, Ls)), 0.15,
              SOURCE_FC),
        check("linear Gaussian: λ_max / (L⁻ᴸ(L+1)ᴸ⁺¹), mean over the depths", 1.0,
              float(np.mean([m[2] / fuss_catalan_edge(L) for m, L in zip(moments, Ls,
                                                                       strict=True)])),
              0.15, SOURCE_FC),
        check("linear orthogonal: largest |σ − 1| over all singular values", 0.0,
              float(np.max(np.abs(np.asarray(orth_linear["sv"]) - 1.0))), 1e-9, SOURCE_ORTH),
    ]
    for t, (_mean, nvar, _mx), theory in tanh_moments:
        predicted = float(theory["normalized_variance"])
        checks.append(check(f"{t['label']}: σ²_λ/mean² measured / predicted", 1.0,
                            nvar / predicted, 0.2, SOURCE_TANH + f" Predicted {predicted:.3g}."))
    return [linear_fig, tanh_fig], checks


EXPERIMENT = Experiment(
    name="pennington2017", title="Pennington et al. 2017: Jacobian spectra and isometry",
    paper="J. Pennington, S. S. Schoenholz, S. Ganguli. Resurrecting the sigmoid in deep "
          "learning through dynamical isometry: theory and practice. NeurIPS 2017.",
    summary="Singular values of the input-output Jacobian at depth L: linear Gaussian "
            "(Fuss–Catalan), orthogonal linear (all 1), critical tanh with orthogonal vs "
            "Gaussian weights against free probability.",
    tasks=tasks, analyze=analyze)
