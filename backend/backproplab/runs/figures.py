"""A run's key figures, folded step by step, and the brief of a step that the history
and the comparison draw (so neither decodes whole steps)."""

from __future__ import annotations

import math
from typing import Any


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _nonfinite(v: Any) -> bool:
    """NaN or ±Inf; a missing figure (a watched module without weights) is not."""
    return isinstance(v, float) and not math.isfinite(v)


def brief(step: dict[str, Any]) -> dict[str, Any]:
    """What the history and the comparison draw: loss, accuracy, ‖δ(l)‖ per layer."""
    return {"step": step["step"], "loss": step.get("loss"), "accuracy": step.get("accuracy"),
            "delta": [layer.get("delta_norm") for layer in step.get("layers", ())]}


def fold_summary(summary: dict[str, Any], step: dict[str, Any]) -> dict[str, Any]:
    """The run's key figures after one more step: final and lowest loss, the first
    step and layer where δ or ∇W turned non-finite, ‖δ‖ at the first and last hidden
    layer of the latest step (their ratio is the gradient's gain through depth)."""
    out = dict(summary)
    loss = step.get("loss")
    out["final_step"] = step["step"]
    out["final_loss"] = loss
    out["final_accuracy"] = step.get("accuracy")
    if _finite(loss) and (out.get("min_loss") is None or loss < out["min_loss"]):
        out["min_loss"] = loss
    layers = step.get("layers") or []
    out["layers"] = len(layers)
    if out.get("first_nonfinite") is None:
        marker = step.get("overflow")
        if marker:
            out["first_nonfinite"] = {"step": marker["step"], "layer": marker["layer"]}
        else:
            for i, layer in enumerate(layers):
                if _nonfinite(layer.get("delta_norm")) or _nonfinite(layer.get("grad_w_norm")):
                    out["first_nonfinite"] = {"step": step["step"],
                                              "layer": layer.get("index", i)}
                    break
    hidden = [layer for layer in layers if layer.get("kind") != "output"] or layers
    if hidden:
        out["delta_first"] = hidden[0].get("delta_norm")
        out["delta_last"] = hidden[-1].get("delta_norm")
    return out
