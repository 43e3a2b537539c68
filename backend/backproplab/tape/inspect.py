"""Step through a recorded tape: the backward pass one node at a time, a
forward-mode pass with a chosen tangent, and a JSON description for the browser."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .core import Box, MissingRuleError, ReverseTrace, backward_pass, jvp_rules, primal_value
from .transforms import _as_array, tree_flatten, tree_unflatten


def _describe_params(params: dict) -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, (int, float, str, bool)) or value is None:
            out[key] = value
        elif isinstance(value, tuple) and all(isinstance(v, (int, type(None))) for v in value):
            out[key] = list(value)
        else:
            out[key] = type(value).__name__
    return out


class RecordedTape:
    """f(*primals) recorded once, to be walked backward or forward step by step.

    `names` labels the leaves of the primals (e.g. "W1", "b1", "x").
    """

    def __init__(self, f: Callable, *primals: Any, names: list[str] | None = None):
        self.trace = ReverseTrace()
        flat, struct = tree_flatten(primals)
        self.inputs = [self.trace.new_input(_as_array(x)) for x in flat]
        self.names = list(names) if names else [f"x{i}" for i in range(len(flat))]
        out = f(*tree_unflatten(struct, self.inputs))
        if not (isinstance(out, Box) and out._trace is self.trace):
            raise ValueError("the recorded function does not depend on its inputs")
        self.out: Box = out
        self.labels = {b.index: name for b, name in zip(self.inputs, self.names,
                                                               strict=True)}

    @property
    def nodes(self) -> list[Box]:
        return self.trace.nodes[: self.out.index + 1]

    def label(self, node: Box) -> str:
        return self.labels.get(node.index, f"{node.prim.name if node.prim else 'input'}"
                                           f"#{node.index}")

    def describe(self) -> dict:
        """Nodes, edges, shapes and op names: a JSON-able graph."""
        nodes, edges = [], []
        for node in self.nodes:
            nodes.append({
                "id": node.index,
                "op": node.prim.name if node.prim else "input",
                "label": self.label(node),
                "shape": list(np.shape(primal_value(node._primal))),
                "params": _describe_params(node.params),
                "is_output": node is self.out,
            })
            for argpos, parent in zip(node.positions, node.parents, strict=True):
                edges.append({"source": parent.index, "target": node.index, "arg": argpos})
        return {"nodes": nodes, "edges": edges, "output": self.out.index}

    def backward_steps(self, seed: Any = None) -> Iterator[dict]:
        """Yield, for each node in reverse order: op, shapes, incoming cotangent,
        outgoing cotangents (per parent). Ends with the inputs' gradients."""
        value = primal_value(self.out)
        if seed is None:
            seed = np.ones(np.shape(value), dtype=np.asarray(value).dtype)
        for item in backward_pass(self.trace, [(self.out, seed)], inspect=True):
            if isinstance(item, list):
                grads = {self.label(b): item[b.index] for b in self.inputs}
                yield {"kind": "done", "grads": grads}
                return
            yield {
                "kind": "node",
                "index": item.index,
                "op": item.op,
                "label": self.label(self.trace.nodes[item.index]),
                "input_shapes": [list(s) for s in item.input_shapes],
                "output_shape": list(item.output_shape),
                "cotangent_in": item.cotangent_in,
                "cotangents_out": [{"to": j, "label": self.label(self.trace.nodes[j]),
                                    "value": ct} for j, ct in item.cotangents_out],
            }

    def forward_steps(self, tangents: dict[str, Any]) -> Iterator[dict]:
        """Push tangents (by input name; others are zero) forward node by node."""
        tan: dict[int, Any] = {}
        for b in self.inputs:
            name = self.labels[b.index]
            if name in tangents:
                tan[b.index] = np.asarray(tangents[name], dtype=b._primal.dtype)
        for node in self.nodes:
            if node.prim is None or not any(p.index in tan for p in node.parents):
                continue
            jvp = jvp_rules.get(node.prim)
            if jvp is None:
                raise MissingRuleError(f"no JVP rule for '{node.prim.name}'")
            arg_tangents = [None] * len(node.primals)
            for argpos, parent in zip(node.positions, node.parents, strict=True):
                arg_tangents[argpos] = tan.get(parent.index)
            out = tan[node.index] = jvp(arg_tangents, node._primal, node.primals, node.params)
            yield {"kind": "node", "index": node.index, "op": node.prim.name,
                   "label": self.label(node),
                   "tangents_in": [{"from": p.index, "value": tan.get(p.index)}
                                   for p in node.parents],
                   "tangent_out": out}
