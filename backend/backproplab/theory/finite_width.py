"""How far a finite-width network may stray from the mean-field line.

For ReLU networks at He initialization, ln of the squared norm of a vector pulled
back through layers of widths n_k is approximately Gaussian with variance
≈ 5 Σ_k 1/n_k (Hanin & Nica 2019, "Products of many large random matrices and
gradients in deep neural networks"): the mean-field line is the mean, and at width
128 over 50 layers a factor of e^{√(5·50/128)/2} ≈ 2 either way is expected.

The law is for one input. A run's ‖δ(l)‖ is the RMS over a batch of examples, which
share the weights but not the ReLU patterns, and spreads less: over 256 seeds at
depth 20, width 128 the variance is 1.1× the law with one example and 0.58× it with
64 (engines.ensemble measures the spread of the run's own statistic, for any
activation).
"""

from __future__ import annotations

import math


def relu_log_norm2_variance(widths: list[int]) -> float:
    """Var ln ‖δ‖² gathered over layers of these widths (5 Σ 1/n_k)."""
    return 5.0 * sum(1.0 / n for n in widths)


def relu_norm_band(widths: list[int]) -> float:
    """The factor e^{σ/2}: one standard deviation of ln ‖δ‖ either way."""
    return math.exp(0.5 * math.sqrt(relu_log_norm2_variance(widths)))
