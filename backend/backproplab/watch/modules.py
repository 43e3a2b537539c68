"""Which modules of a model are watched, what each is, and which of its parameters
are weights and which are biases. Refuses what the hooks cannot see correctly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# outputs a(l) = φ(u) whose "saturated" fraction means φ'(u) < 5% of max φ', written
# in terms of the output: tanh' = 1 − a², σ' = a(1 − a) (max 1/4)
SATURATING = {"Tanh": "tanh", "Sigmoid": "sigmoid"}
# outputs that are exactly 0 where a unit passes no signal: a unit (one element of the
# per-example output) is dead when it is 0 for every example of the batch
RECTIFIERS = {"ReLU", "ReLU6"}

COMPILE_ADVICE = (
    "backproplab.watch takes the module itself, before it is compiled: "
    "w = backproplab.watch(model); compiled = torch.compile(model). Its hooks then run "
    "inside the compiled model on recorded steps and report what eager mode reports; "
    "for a model you only have compiled, pass compiled._orig_mod and compile it again.")


@dataclass
class Watched:
    """One watched module: its qualified name, class, and parameters split into
    weights (every parameter not named like a bias) and biases."""

    name: str
    module: Any
    kind: str
    weights: list = field(default_factory=list)
    biases: list = field(default_factory=list)

    @property
    def params(self) -> list:
        return self.weights + self.biases


def unwrap(model: Any) -> Any:
    """The module inside DistributedDataParallel / DataParallel (names without the
    "module." prefix); refuses compiled models."""
    import torch

    if _compiled(model):
        raise ValueError(COMPILE_ADVICE)
    while isinstance(model, (torch.nn.parallel.DistributedDataParallel,
                             torch.nn.DataParallel)):
        model = model.module
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"watch() takes a torch.nn.Module, got {type(model).__name__}")
    for name, sub in model.named_modules():
        if _compiled(sub):
            raise ValueError(f"module {name or '(root)'!r} is compiled. " + COMPILE_ADVICE)
    return model


def _compiled(module: Any) -> bool:
    # torch.compile(m) wraps m in an OptimizedModule; m.compile() sets _compiled_call_impl
    return (type(module).__name__ == "OptimizedModule" and hasattr(module, "_orig_mod")) \
        or getattr(module, "_compiled_call_impl", None) is not None


def _is_bias(param_name: str) -> bool:
    return param_name == "bias" or param_name.endswith("_bias")


def select(model: Any, modules: str | list[str] = "leaves") -> list[Watched]:
    """The watched modules in definition order: "leaves" (modules without children,
    plus any module holding parameters of its own, e.g. nn.MultiheadAttention's
    in_proj_weight), "all" but the root, or a list of qualified names."""
    named = dict(model.named_modules())
    if isinstance(modules, str):
        if modules not in ("leaves", "all"):
            raise ValueError(f'modules must be "leaves", "all" or a list of names, '
                             f'got {modules!r}')
        chosen = [name for name, m in named.items() if name and (
            modules == "all" or not any(True for _ in m.children())
            or any(True for _ in m.parameters(recurse=False)))]
        if not chosen and not any(True for _ in model.children()):
            chosen = [""]  # a model that is itself a single layer
    else:
        missing = [n for n in modules if n not in named]
        if missing:
            raise ValueError(f"no module named {missing[0]!r} in the model; some names: "
                             f"{', '.join(list(n for n in named if n)[:8])}")
        chosen = list(modules)
    out = []
    for name in chosen:
        module = named[name]
        w = Watched(name=name or type(module).__name__, module=module,
                    kind=type(module).__name__)
        for pname, p in module.named_parameters(recurse=False):
            if p.requires_grad:
                (w.biases if _is_bias(pname) else w.weights).append(p)
        out.append(w)
    if not out:
        raise ValueError("the model has no module to watch")
    return out


def summary(model: Any, watched: list[Watched]) -> list[dict[str, Any]]:
    """One line per watched module for the record's config: name, class, parameters."""
    return [{"name": w.name, "kind": w.kind,
             "parameters": int(sum(p.numel() for p in w.params))} for w in watched]
