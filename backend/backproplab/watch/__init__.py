"""backproplab.watch: live gradient flow for your own PyTorch model.

    import backproplab
    with backproplab.watch(model, every=1, out="run.jsonl") as w:
        for x, y in loader:
            loss = loss_fn(model(x), y); loss.backward(); opt.step()
            w.step(loss)          # after the optimizer step, before zero_grad
            opt.zero_grad()

Per watched module (leaf modules by default, in forward order, named by qualified
name) each recorded step carries ‖δ‖ = ‖∂L/∂(module output)‖, gradient, weight and
update norms, output moments, saturated/dead fractions where they mean something and
two histograms, in the run-record schema of the Lab. A numeric layer: it imports no
web package, and torch only when `watch()` is called."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def watch(model: Any, every: int = 1, out: str | Path | None = None,
          server: str | None = None, name: str | None = None, *, scaler: Any = None,
          modules: str | list[str] = "leaves", hist_bins: int = 24,
          secret: str | None = None, update_ratio: bool = True, keep: int = 1000,
          seed: int = 0) -> Any:
    """Instrument `model` (an nn.Module, or DDP around one); returns a Watcher.

    every: record one optimizer step in `every` (hooks are off in between).
    out: a JSON-lines file written and flushed step by step.
    server: a running `backproplab serve` (e.g. "http://127.0.0.1:8000") to push
        each recorded step to, with the secret from its file (or `secret=`).
    scaler: a torch.amp.GradScaler, to report δ of the unscaled loss.
    modules: "leaves", "all", or a list of qualified module names.
    update_ratio: keep a copy of the watched weights to report ‖ΔW‖/‖W‖.
    keep: recorded steps kept in memory for `Watcher.record()`."""
    from .watcher import Watcher

    return Watcher(model, every=every, out=out, server=server, name=name, scaler=scaler,
                   modules_=modules, hist_bins=hist_bins, secret=secret,
                   update_ratio=update_ratio, keep=keep, seed=seed)


__all__ = ["watch"]
