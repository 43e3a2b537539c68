"""The same training step on the NumPy tape and on PyTorch, with per-layer probes."""

from .runner import SCHEMA, Cancelled, first_nonfinite, iter_steps, make_engine, recorded_steps, run

__all__ = ["SCHEMA", "Cancelled", "first_nonfinite", "iter_steps", "make_engine",
           "recorded_steps", "run"]
