"""The same training step on the NumPy tape and on PyTorch, with per-layer probes."""

from .runner import (
    SCHEMA,
    Cancelled,
    environment,
    first_nonfinite,
    iter_steps,
    make_engine,
    recorded_steps,
    run,
    theory_for,
)

__all__ = ["SCHEMA", "Cancelled", "environment", "first_nonfinite", "iter_steps",
           "make_engine", "recorded_steps", "run", "theory_for"]
