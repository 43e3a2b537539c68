"""Runs side by side: what the Runs page and the compare report draw, from the store.

For each run: its index entry, the gradient-flow profile at its last recorded step
(‖δ(l)‖ and ‖∇W(l)‖ per layer), and its loss curve and ‖δ(l)‖-over-steps heatmap from
at most `points` evenly spaced steps. For the runs together: every config field
(record.* flattened) with each run's value and whether they differ.
"""

from __future__ import annotations

from typing import Any

from .store import RunStore

MAX_COMPARED = 8


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"record": {"every": 2}} -> {"record.every": 2}."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_fields(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every field of the configs in order, each run's value (None where a run's config
    lacks it), and `differs`; fields that differ first."""
    flat = [flatten(c or {}) for c in configs]
    names: list[str] = []
    for f in flat:
        names.extend(k for k in f if k not in names)
    fields = [{"field": k, "values": [f.get(k) for f in flat],
               "differs": len({repr(f.get(k)) for f in flat}) > 1} for k in names]
    return sorted(fields, key=lambda f: not f["differs"])


def profile(step: dict[str, Any] | None) -> dict[str, Any] | None:
    """The gradient-flow profile of one step: per layer index, kind, ‖δ‖, ‖∇W‖."""
    if step is None:
        return None
    layers = step.get("layers") or []
    return {"step": step["step"], "loss": step.get("loss"), "overflow": step.get("overflow"),
            "index": [layer["index"] for layer in layers],
            "kind": [layer.get("kind") for layer in layers],
            "delta_norm": [layer.get("delta_norm") for layer in layers],
            "grad_w_norm": [layer.get("grad_w_norm") for layer in layers]}


def compare(store: RunStore, ids: list[str], points: int = 300) -> dict[str, Any]:
    """The comparison of stored runs (NotFound names the first unknown id)."""
    runs = []
    for run_id in ids:
        entry = store.get(run_id)
        briefs = store.briefs(run_id, points)
        runs.append({**entry, "last": profile(store.last_step(run_id)),
                     "series": {"step": [b["step"] for b in briefs],
                                "loss": [b["loss"] for b in briefs],
                                "accuracy": [b.get("accuracy") for b in briefs],
                                "delta_norm": [b["delta"] for b in briefs]}})
    return {"runs": runs, "fields": config_fields([r["config"] for r in runs])}
