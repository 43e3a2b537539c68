"""What an experiment is: runs to execute, and from their results figures and checks
against the published numbers.

A check is `{"name", "published", "measured", "tolerance", "pass", "relation",
"source"}`: relation "≈" passes when |measured − published| ≤ tolerance, "<" when
measured ≤ published − tolerance (clearly below), ">" when measured ≥ published +
tolerance (clearly above). `source` quotes where the published value comes from.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def check(name: str, published: float, measured: float, tolerance: float, source: str,
          relation: str = "≈") -> dict[str, Any]:
    """One check of a measured number against a published one."""
    if not math.isfinite(measured):
        passed = False
    elif relation == "≈":
        passed = abs(measured - published) <= tolerance
    elif relation == "<":
        passed = measured <= published - tolerance
    elif relation == ">":
        passed = measured >= published + tolerance
    else:
        raise ValueError(f"unknown relation {relation!r}")
    return {"name": name, "published": float(published), "measured": float(measured),
            "tolerance": float(tolerance), "relation": relation, "pass": bool(passed),
            "source": source}


def task(kind: str, label: str, **params: Any) -> dict[str, Any]:
    """One unit of work: a task kind of `experiments.tasks`, its parameters, and a label
    that says what it is in the paper's terms."""
    return {"kind": kind, "label": label, "params": params}


@dataclass(frozen=True)
class Experiment:
    """A paper reproduction. `tasks(quick, seed)` lists the runs; `analyze(tasks,
    results, quick)` turns their results (in task order) into (figures, checks):
    figures are Plotly figure dicts, checks come from `check`."""

    name: str
    title: str
    paper: str
    summary: str
    tasks: Callable[[bool, int], list[dict[str, Any]]]
    analyze: Callable[[list[dict], list[dict], bool], tuple[list[dict], list[dict]]]
