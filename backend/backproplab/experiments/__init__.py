"""Paper reproductions: each experiment is a list of runs, the paper's figure and
checks of measured numbers against published ones, executed in this process, on a
local process pool or on a Ray cluster (`experiments.execute`)."""

from __future__ import annotations

from .base import Experiment, check, task
from .run import config_hash, run_experiment


def registry() -> dict[str, Experiment]:
    """name → Experiment, in the order the papers appeared."""
    from . import chen2016, glorot2010, he2015, pennington2017, schoenholz2017

    modules = (glorot2010, he2015, chen2016, schoenholz2017, pennington2017)
    return {m.EXPERIMENT.name: m.EXPERIMENT for m in modules}


def get(name: str) -> Experiment:
    found = registry().get(name)
    if found is None:
        raise ValueError(f"unknown experiment {name!r}; one of: {', '.join(registry())}")
    return found


__all__ = ["Experiment", "check", "config_hash", "get", "registry", "run_experiment",
           "task"]
