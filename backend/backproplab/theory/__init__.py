"""Mean-field predictions for gradient flow, and phase diagrams (NumPy only)."""

from .meanfield import (
    chi1,
    critical_sigma_w2,
    jacobian_moments,
    length_map,
    mean_dphi2,
    mean_phi2,
    q_star,
    xi_grad,
)
from .predict import input_length, predict, profiles, trajectory

__all__ = ["chi1", "critical_sigma_w2", "input_length", "jacobian_moments", "length_map",
           "mean_dphi2", "mean_phi2", "predict", "profiles", "q_star", "trajectory", "xi_grad"]
