"""The JAX engine's training step as one pure function, traced and jitted whole:
forward, backward (jax.value_and_grad), the probes' statistics (jax_probes),
clipping and the optimizer update become a single XLA computation.

The layers are the network's (model.network: layer_forward over a JAX kernel set,
φ from the activation registry's JAX slot). Hidden layers 2..L, all W×W, run as
one `lax.scan` over stacked weights, so the program (and its compile time) does not
grow with depth; layer 1 (fan-in of the data) and the output layer are apart.
`checkpoint: "sqrt"` cuts the hidden layers into the same ≈√L segments as the other
engines and wraps each in `jax.checkpoint`: only segment inputs are kept, each
segment is recomputed once in the backward pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from ..model import network
from ..model.spec import RunSpec
from . import probes
from .jax_delta import capper, per_example_norms
from .jax_probes import delta_slots, layer_norms, pack, spectrum, summary_block, tap
from .jax_xp import JAX
from .optim import ADAM_EPS, BETA1, BETA2, MOMENTUM

UNROLL = 4  # scan iterations per loop trip: fewer loop overheads, a program still small
COPY_MAX_VALUES = 1 << 18  # weights XLA may copy before the update (1 MB in float32)


# --- parameters: [W(1), b(1), ..., W(L+1), b(L+1)] <-> first, stacked hidden, output ------


def stack_params(flat: list) -> dict:
    """{"first": [W, b], "hidden": [W (L-1, W, W), b (L-1, W)], "out": [W, b]}."""
    Ws, bs = flat[2:-2:2], flat[3:-2:2]
    width = flat[0].shape[0]
    hidden = [jnp.stack(Ws) if Ws else jnp.zeros((0, width, width), flat[0].dtype),
              jnp.stack(bs) if bs else jnp.zeros((0, width), flat[0].dtype)]
    return {"first": list(flat[:2]), "hidden": hidden, "out": list(flat[-2:])}


def flat_params(stacked: dict) -> list:
    Ws, bs = stacked["hidden"]
    middle = [t for i in range(Ws.shape[0]) for t in (Ws[i], bs[i])]
    return stacked["first"] + middle + stacked["out"]


def part_sizes(batch: int, microbatches: int) -> list[int]:
    """Rows of each microbatch, as tape.split_batch cuts them."""
    bounds = [round(k * batch / microbatches) for k in range(microbatches + 1)]
    return [hi - lo for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]


def segments(spec: RunSpec) -> list[tuple[int, int]]:
    """Hidden layers [lo, hi) per checkpointed segment (one segment: no checkpointing)."""
    return spec.segment_bounds


def make_loss(spec: RunSpec, keep: int | None) -> Callable:
    """loss(params, slots, x, labels, targets) -> (mean loss, (rows, output)).

    params: stacked (see stack_params); slots: None for a plain step, else zero
    slots {"first", "hidden" (L-1, …), "out"} whose gradients are δ (jax_probes.tap);
    rows: z(l) and a(l) of the first `keep` examples, hidden layers stacked."""
    net = network.layers(spec)
    first_layer = net[0]
    hidden_layer = net[1] if spec.depth > 1 else None  # layers 2..L are alike
    phi = net[0].activation.jax_forward(jax)  # the registry's JAX kernel
    cap = capper(spec.delta_clip)  # δ(l) capped before the tap sees it and dense uses it
    kernels = network.Kernels(xp=JAX, dense=lambda a, W, b, layer: cap(a @ W.T + b),
                              activation=lambda u, layer: phi(u))
    checkpointing = spec.segments > 1

    def layer_forward(layer, a, W, b, slot):
        k = kernels if slot is None else dataclasses.replace(
            kernels, dense=lambda a, W, b, layer: cap(tap(a @ W.T + b, slot, keep)))
        v = network.layer_forward(layer, k, a, W, b)
        return v.z, v.a_out

    def body(a, xs):
        W, b, slot = xs
        z, a = layer_forward(hidden_layer, a, W, b, slot)
        return a, ((z[:keep], a[:keep]) if keep else None)

    def run_segment(lo, hi):
        def run(a, first, hidden, first_slot, hidden_slots):
            rows0 = None
            if lo == 0:
                z, a = layer_forward(first_layer, a, *first, first_slot)
                rows0 = (z[:keep], a[:keep]) if keep else None
            rows = None
            if hidden[0].shape[0]:  # a one-layer segment (or network) has no stack to scan
                a, rows = jax.lax.scan(body, a, (*hidden, hidden_slots), unroll=UNROLL)
            return a, rows0, rows
        return jax.checkpoint(run) if checkpointing else run

    runs = [(lo, hi, run_segment(lo, hi)) for lo, hi in segments(spec)]

    def loss(params, slots, x, labels, targets):
        Ws, bs = params["hidden"]
        a, first_rows, hidden_rows = x, None, []
        for lo, hi, run in runs:
            start, stop = max(lo, 1) - 1, hi - 1  # rows of the hidden stack
            first_slot = None if slots is None else slots["first"]
            hidden_slots = None if slots is None else slots["hidden"][start:stop]
            a, rows0, rows = run(a, params["first"], [Ws[start:stop], bs[start:stop]],
                                 first_slot, hidden_slots)
            if rows0 is not None:
                first_rows = rows0
            if rows is not None:
                hidden_rows.append(rows)
        out = a @ params["out"][0].T + params["out"][1]
        if slots is not None:
            out = tap(out, slots["out"], keep)
        out = cap(out)
        value = loss_value(spec.loss, out, labels, targets)
        rows = None
        if keep:  # (L, keep, W) each: z and a rows of every hidden layer, input side first
            rows = tuple(jnp.concatenate([first_rows[i][None]] + [r[i] for r in hidden_rows])
                         for i in range(2))
        return value, (rows, out)

    return loss


def loss_value(kind: str, out, labels, targets):
    """The batch's mean loss: squared error against the targets, or softmax
    cross-entropy of the labels."""
    if kind == "mse":
        return jnp.mean(jnp.square(out - targets))
    logp = jax.nn.log_softmax(out, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


def _weighted(values: list, weights: list[float]):
    """Σ wₖ·vₖ over pytrees (one part: itself)."""
    if len(values) == 1:
        return values[0]
    return jax.tree.map(lambda *vs: sum(w * v for w, v in zip(weights, vs, strict=True)),
                        *values)


def _update(spec: RunSpec, state: dict, grads: dict, hyper, lr):
    """(new state, ΔW per leaf); hyper = [lr, 1−β₁ᵗ, 1−β₂ᵗ] (engines.optim's rules),
    lr: hyper[0] (or the same value ordered after the probes' norms: _after)."""
    c1, c2 = hyper[1], hyper[2]
    tree = jax.tree.map
    new = {}
    if spec.optimizer == "sgd":  # ΔW = −lr·g
        updates = tree(lambda g: -lr * g, grads)
    elif spec.optimizer == "momentum":  # v ← μv + g (v₀ = 0: v₁ = g), ΔW = −lr·v
        new["m"] = tree(lambda m, g: MOMENTUM * m + g, state["m"], grads)
        updates = tree(lambda m: -lr * m, new["m"])
    else:  # adam: ΔW = −lr·m̂/(√v̂ + ε)
        new["m"] = tree(lambda m, g: BETA1 * m + (1 - BETA1) * g, state["m"], grads)
        new["v"] = tree(lambda v, g: BETA2 * v + (1 - BETA2) * g * g, state["v"], grads)
        updates = tree(lambda m, v: -lr * (m / c1) / (jnp.sqrt(v / c2) + ADAM_EPS),
                       new["m"], new["v"])
    new["params"] = tree(lambda p, u: p + u, state["params"], updates)
    return {**state, **new}, updates


def _after(norms, value):
    """value, once `norms` are computed: a norm is ≥ 0 or NaN, so the select always
    picks value, but XLA cannot know it and must order the norms (the one operation,
    a conditional, that computes all layers') before what uses value. The update
    writes the weights in place (the state is donated); ordered after ‖W‖ has read
    them, XLA needs no copy of every weight to keep them (an optimization barrier
    does not survive XLA's scheduling on the CPU)."""
    first = norms[0]
    return jnp.where((first >= 0) | jnp.isnan(first), value, jnp.nan)


def _weight_and_bias_norms(tree: dict, weights_of: dict | None = None):
    """(‖W(l)‖, ‖b(l)‖) per layer of a stacked parameter tree, and ‖W(l)‖ of
    `weights_of` if given: one batched computation (jax_probes.layer_norms)."""
    trees = [(tree, 0), (tree, 1)] + ([(weights_of, 0)] if weights_of is not None else [])
    return tuple(layer_norms(*((t["first"][i], t["hidden"][i], t["out"][i])
                               for t, i in trees)))


def make_step(spec: RunSpec, probe: bool, with_spectrum: bool, update: bool) -> Callable:
    """step(state, x, labels, targets, hyper, units, q0) -> (state, out): out is the
    packed vector of a recorded step (jax_probes.pack), else {"loss", "output"}."""
    sizes = part_sizes(spec.batch_size, spec.microbatches)
    batch = spec.batch_size
    n_sub = probes.subsample_size(batch, spec.width)
    grad_fn = jax.value_and_grad(make_loss(spec, keep=n_sub if probe else None),
                                 argnums=(0, 1), has_aux=True)
    per_example = probe and spec.record.per_example
    # weights too large to copy cheaply (see _after); below, a copy costs less than
    # the order, which keeps the update from running beside the statistics
    large = spec.depth * spec.width * spec.width > COPY_MAX_VALUES

    def step(state, x, labels, targets, hyper, units, q0):
        params = state["params"]
        dtype = x.dtype
        losses, grad_parts, outputs, parts = [], [], [], []
        weights = [size / batch for size in sizes]  # the mean gradient: share-weighted
        start = 0
        for size in sizes:
            xb, lb, tb = (v[start:start + size] for v in (x, labels, targets))
            start += size
            keep = min(n_sub, size)
            slots = delta_slots(spec, size, keep, dtype) if probe else None
            (value, (rows, out)), (g, reductions) = grad_fn(params, slots, xb, lb, tb)
            losses.append(value)
            grad_parts.append(g)
            outputs.append(out)
            if probe:
                parts.append((size, keep, rows, out[:keep], reductions))
        loss = _weighted(losses, weights)
        grads = _weighted(grad_parts, weights)
        output = outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, 0)
        grad_norms = _weight_and_bias_norms(grads, params if probe else None) \
            if probe or spec.clip is not None else None
        if per_example:  # of the parameters the step starts from, against ∇W before `clip`
            per_example_out = per_example_norms(make_loss(spec, None), params, x, labels,
                                                targets, grads)
        scale = None
        if spec.clip is not None:  # min(1, max/‖g‖); 1 when ‖g‖ is not finite
            total = jnp.sqrt(sum(jnp.sum(n * n) for n in grad_norms[:2]))
            scale = jnp.where(jnp.isfinite(total) & (total > spec.clip), spec.clip / total, 1.0)
            grads = jax.tree.map(lambda g: g * scale, grads)
        weight_norms = grad_norms[2] if probe else None
        if update:
            lr = _after(grad_norms[2], hyper[0]) if probe and large else hyper[0]
            state, updates = _update(spec, state, grads, hyper, lr)
        if not probe:
            return state, {"loss": loss, "output": output}
        if not update:
            update_norms = 0.0 * weight_norms
        elif spec.optimizer == "sgd":  # ‖ΔW‖ = lr·(clip scale)·‖∇W‖
            update_norms = hyper[0] * grad_norms[0] * (1.0 if scale is None else scale)
        else:
            update_norms = _weight_and_bias_norms(updates)[0]
        block = summary_block(spec, parts, n_sub, units, {
            "grad_w": grad_norms[0], "grad_b": grad_norms[1], "weight": weight_norms,
            "update": update_norms})
        sv = None
        if with_spectrum:  # the updated weights, z(l) of example 0 (in the first part)
            sv = spectrum(spec, state["params"]["hidden"][0], parts[0][2][0][:, 0], q0)
        packed = pack(block, loss, output, sv)
        return state, (packed, *per_example_out) if per_example else packed

    return step
