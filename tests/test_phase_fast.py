"""The analytic phase diagram from tabulated Gaussian expectations: the same values
as the direct per-layer quadrature (the former implementation, kept here as the
reference), scipy's adaptive quadrature at sample points, and fast."""

import math
import time

import numpy as np
import pytest

from backproplab.model import ACTIVATION_NAMES, ACTIVATIONS
from backproplab.theory import phase, tables
from backproplab.theory.meanfield import chi1, critical_sigma_w2, length_map
from backproplab.xp import NUMPY

W2 = np.linspace(0.25, 4.0, 24)
B2 = np.linspace(0.0, 0.5, 24)


def direct_analytic(act, sigma_w2s, sigma_b2s, depth, q_in=1.0):
    """The former scalar-quadrature code: every layer and up to 2000 fixed-point
    iterations through meanfield's direct quadrature on the whole grid."""
    w2, b2 = np.meshgrid(sigma_w2s, sigma_b2s)
    q = np.full(w2.shape, q_in)
    log_ratio = np.zeros(w2.shape)
    qs = []
    for _ in range(depth):
        q = length_map(act, q, w2, b2)
        q = np.where(q > 1e12, np.inf, q)
        qs.append(q)
    for q_l in qs[:-1]:
        with np.errstate(divide="ignore"):
            log_ratio += np.log10(chi1(act, w2, q_l))
    q_fixed = qs[-1]
    for _ in range(2000):
        new = length_map(act, q_fixed, w2, b2)
        new = np.where(new > 1e12, np.inf, new)
        if np.allclose(new, q_fixed, rtol=1e-12, atol=1e-300, equal_nan=True):
            break
        q_fixed = new
    return chi1(act, w2, q_fixed), log_ratio, q_fixed


@pytest.mark.parametrize("act", ACTIVATION_NAMES)
def test_analytic_grid_equals_direct_quadrature(act):
    out = phase.analytic(act, W2, B2, depth=20)
    chi_ref, ratio_ref, q_ref = direct_analytic(act, W2, B2, 20)
    chi = np.array(out["chi1"])
    # where the direct iteration underflowed to q = 0 it evaluates φ' at 0 exactly (for
    # selu/elu the left branch); the table solver takes the limit q → 0⁺ instead
    at_zero = q_ref == 0.0
    np.testing.assert_allclose(chi[~at_zero], chi_ref[~at_zero], rtol=1e-8)
    np.testing.assert_allclose(np.array(out["log10_grad_ratio"]), ratio_ref, rtol=0, atol=1e-8)
    line = np.array([p["sigma_w2"] for p in out["critical_line"]], dtype=float)
    ref = np.array([critical_sigma_w2(act, float(b)) for b in B2])
    np.testing.assert_allclose(line, ref, rtol=1e-8, equal_nan=True)


@pytest.mark.parametrize("act", ["tanh", "gelu", "selu", "softplus"])
def test_tables_against_scipy_quadrature(act):
    from scipy import integrate

    phi, dphi = ACTIVATIONS[act].phi, ACTIVATIONS[act].dphi
    for q in (1e-6, 0.03, 0.7, 2.5, 40.0):
        for which, fn in (("phi2", phi), ("dphi2", dphi)):
            def integrand(x, fn=fn, q=q):
                return float(fn(np.array(math.sqrt(q) * x), NUMPY)) ** 2 * math.exp(
                    -0.5 * x * x) / math.sqrt(2 * math.pi)
            ref = sum(integrate.quad(integrand, a, b, epsabs=0, epsrel=1e-13, limit=200)[0]
                      for a, b in ((-np.inf, 0.0), (0.0, np.inf)))
            got = float(tables.lookup(act, which, np.array([q]))[0])
            assert got == pytest.approx(ref, rel=1e-8), (which, q)


def test_selu_fixed_point_zero_uses_the_right_limit():
    """σ_b = 0, σ_w² small: q → 0⁺ and χ₁ → σ_w² λ²(1 + α²)/2 (both branches of φ′)."""
    from backproplab.model.activations import SELU_ALPHA, SELU_SCALE

    out = phase.analytic("selu", np.array([0.25]), np.array([0.0]), depth=5)
    expected = 0.25 * SELU_SCALE**2 * (1 + SELU_ALPHA**2) / 2
    assert out["chi1"][0][0] == pytest.approx(expected, rel=1e-6)


def test_analytic_grid_is_fast_for_every_activation():
    """24 × 24 at depth 20 in ≤ 100 ms on an idle machine; the bound asserted here is
    generous for a shared CI machine, and the figures are printed."""
    figures = {}
    for act in ACTIVATION_NAMES:
        phase.analytic(act, W2[:2], B2[:2], depth=2)  # the tables, once per process
        start = time.perf_counter()
        phase.analytic(act, W2, B2, depth=20)
        figures[act] = time.perf_counter() - start
    print("analytic 24x24, depth 20 (s):", {k: round(v, 4) for k, v in figures.items()})
    assert max(figures.values()) < 0.5
    phase.clear_grid_cache()
    phase.analytic_grid("tanh", (0.25, 4.0), (0.0, 0.5), 24, 20)
    start = time.perf_counter()
    again = phase.analytic_grid("tanh", (0.25, 4.0), (0.0, 0.5), 24, 20)
    assert time.perf_counter() - start < 1e-3
    assert again["activation"] == "tanh"
