"""The watched model's run record: its config and environment, the first non-finite
value, and the JSON-lines file written as training goes.

The file holds one JSON object per line: the head `{schema, config, environment,
theory}`, then one step `{step, loss, layers, ...}` per line, flushed as it is
written, and at `close()` a last line `{"first_nonfinite": ...}`. A script killed at
step N leaves the head and N whole steps (a half-written last line is ignored), which
`backproplab.runs.jsonl.parse_record` reads back as a run record."""

from __future__ import annotations

import math
import platform
from pathlib import Path
from typing import IO, Any

SCHEMA = "backproplab.run/1"
SOURCE = "watched"  # config["source"]: a watched model's record, not a Lab run


def environment(device: Any, dtype: Any, world_size: int) -> dict[str, Any]:
    import numpy as np
    import torch

    from .. import __version__

    return {"python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "platform": platform.platform(),
            "engine": "torch", "device": str(device), "dtype": str(dtype).replace("torch.", ""),
            "world_size": world_size, "backproplab": __version__}


def config(name: str, model: Any, modules: list[dict], every: int, bins: int,
           dtype: Any, device: Any, scaler: bool) -> dict[str, Any]:
    params = list(model.parameters())
    return {"source": SOURCE, "name": name, "model": type(model).__name__,
            "parameters": int(sum(p.numel() for p in params)),
            "trainable": int(sum(p.numel() for p in params if p.requires_grad)),
            "modules": modules, "every": every, "hist_bins": bins,
            "dtype": str(dtype).replace("torch.", ""), "device": str(device),
            "scaler": scaler}


def _bad(v: Any) -> bool:
    return v is not None and not math.isfinite(v)


def first_nonfinite(step: int, layers: list[dict], backward: list[int], loss: Any,
                    skipped: bool) -> dict[str, Any] | None:
    """{step, module, in, what} at this step: the first module in forward order whose
    output was NaN/±Inf, else the first in backward order whose δ or gradient was
    (not on a step a GradScaler skipped for its overflow: that is its normal work),
    else the loss; None when every value is finite."""
    for layer in layers:
        if _bad(layer["a_mean"]):
            return {"step": step, "module": layer["name"], "in": "forward", "what": "output"}
    if not skipped:
        rest = [i for i in range(len(layers) - 1, -1, -1) if i not in set(backward)]
        for i in list(backward) + rest:
            layer = layers[i]
            for key, what in (("delta_norm", "delta"), ("grad_w_norm", "grad_w"),
                              ("grad_b_norm", "grad_b")):
                if _bad(layer[key]):
                    return {"step": step, "module": layer["name"], "in": "backward",
                            "what": what}
    if _bad(loss):
        return {"step": step, "module": None, "in": "forward", "what": "loss"}
    return None


LAYER_FLOATS = ("delta_norm", "grad_w_norm", "grad_b_norm", "weight_norm", "update_ratio",
                "a_mean", "a_std", "saturated_frac", "dead_frac")


def scalars_finite(step: dict) -> bool:
    """No float at the step's top level (loss, norms, scale) is NaN or ±Inf."""
    isfinite = math.isfinite
    return all(isfinite(v) for v in step.values() if type(v) is float)


def all_finite(step: dict) -> bool:
    """No float in the step is NaN or ±Inf (then it is encoded without a walk)."""
    isfinite = math.isfinite
    if not scalars_finite(step):
        return False
    for layer in step["layers"]:
        for key in LAYER_FLOATS:
            v = layer[key]
            if v is not None and not isfinite(v):
                return False
        for hist in (layer["a_hist"], layer["delta_log_hist"]):
            if hist is not None and not (isfinite(hist["lo"]) and isfinite(hist["hi"])):
                return False
    return True


def encode_line(obj: Any, finite: bool = False) -> bytes:
    from ..runs.codec import encode

    return encode(obj, finite=finite) + b"\n"


class LineFile:
    """The run as JSON lines, each flushed when written (a killed script loses
    nothing it recorded)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.file: IO[bytes] | None = None

    def write(self, obj: Any) -> None:
        self.write_line(encode_line(obj))

    def write_line(self, line: bytes) -> None:
        if self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "wb")  # noqa: SIM115  (kept open for the run)
        self.file.write(line)
        self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
