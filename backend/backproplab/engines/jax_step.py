"""The JAX engine's training step as one pure function, traced and jitted whole:
forward, backward (jax.value_and_grad), the probes' statistics, clipping and the
optimizer update become a single XLA computation.

The hidden layers 2..L, all W×W, run as one `lax.scan` over stacked weights, so
the program (and its compile time) does not grow with depth; layer 1 (fan-in of
the data) and the output layer are apart. `checkpoint: "sqrt"` cuts the hidden
layers into the same ≈√L segments as the other engines and wraps each in
`jax.checkpoint`: only segment inputs are kept, each segment is recomputed once.

δ(l) = ∂loss/∂z(l) is reduced inside the backward pass: z(l) passes through
`tap`, the identity, whose VJP rule hands δ(l) on unchanged and returns, as the
"gradient" of a zero slot, δ(l)'s probe reductions (first rows, live units,
max |δ| and Σ(δ/max)²). XLA fuses them into the backward pass, δ(l) never goes
to memory. A recorded step returns one packed vector (see Layout), read back in
one transfer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..model.spec import RunSpec
from . import probes
from .jacobian import EXACT_MAX_WIDTH, ITERATIONS, _layer_maps
from .jax_xp import JaxXP
from .optim import ADAM_EPS, BETA1, BETA2, MOMENTUM
from .tape_engine import LAYERNORM_EPS
from .xp import norm_window

UNROLL = 4  # scan iterations per loop trip: fewer loop overheads, a program still small

ACTIVATIONS: dict[str, Callable] = {
    # at a kink the other engines' derivative: relu'(0) = 0, leaky_relu'(0) = slope,
    # elu'(0) = 1 (jax.nn's rules give the same)
    "linear": lambda u: u, "relu": jax.nn.relu,
    "leaky_relu": lambda u: jnp.where(u > 0, u, 0.01 * u), "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid, "gelu": lambda u: jax.nn.gelu(u, approximate=False),
    "silu": jax.nn.silu, "softplus": jax.nn.softplus, "elu": jax.nn.elu, "selu": jax.nn.selu,
}


@dataclass(frozen=True)
class Layout:
    """Where each piece of a recorded step sits in the packed vector."""

    layers: int  # L+1
    bins: int
    hidden_samples: int
    out_samples: int
    batch: int
    out_dim: int
    spectrum: int  # 0: no Jacobian spectrum in this step

    @property
    def sizes(self) -> list[tuple[str, tuple]]:
        L1 = self.layers
        return [("table", (L1, len(probes.SCALAR_KEYS))), ("hist", (L1, 2 * self.bins + 6)),
                ("hidden_samples", (L1 - 1, self.hidden_samples)),
                ("out_samples", (1, self.out_samples)), ("loss", ()),
                ("output", (self.batch, self.out_dim)), ("spectrum", (self.spectrum,))]

    def unpack(self, packed: np.ndarray) -> dict[str, np.ndarray]:
        out, at = {}, 0
        for name, shape in self.sizes:
            size = int(np.prod(shape))
            out[name] = packed[at:at + size].reshape(shape)
            at += size
        return out


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


# --- pieces of the step ------------------------------------------------------------------


def part_sizes(batch: int, microbatches: int) -> list[int]:
    """Rows of each microbatch, as tape.split_batch cuts them."""
    bounds = [round(k * batch / microbatches) for k in range(microbatches + 1)]
    return [hi - lo for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]


def segments(spec: RunSpec) -> list[tuple[int, int]]:
    """Hidden layers [lo, hi) per checkpointed segment (one segment: no checkpointing)."""
    bounds = [round(k * spec.depth / spec.segments) for k in range(spec.segments + 1)]
    return [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]


def norm(x, axes=None):
    """‖x‖ over `axes` (all by default) in one pass, √Σx², when every sum of squares
    is inside the window where no square can have under- or overflowed (engines.xp);
    else, and only then (lax.cond), scaled_norm's second pass."""
    squares = jnp.sum(jnp.square(x), axis=axes)
    lo, hi = norm_window(np.dtype(x.dtype))
    inside = jnp.all((squares > lo) & (squares < hi))
    return jax.lax.cond(inside, lambda: jnp.sqrt(squares), lambda: scaled_norm(x, axes))


def scaled_norm(x, axes=None):
    """‖x‖ = m·‖x/m‖ with m = max|x|: no square under- or overflows, in float32 too;
    0, NaN and ±Inf pass through as m."""
    largest = jnp.max(jnp.abs(x), axis=axes)
    return _from_parts(largest, jnp.sum(jnp.square(x / _keep_dims(_safe(largest), x, axes)),
                                        axis=axes))


def _safe(largest):
    return jnp.where(jnp.isfinite(largest) & (largest > 0), largest, 1.0)


def _keep_dims(v, x, axes):
    return v if axes is None else v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def _from_parts(largest, rescaled_squares):
    ok = jnp.isfinite(largest) & (largest > 0)
    return jnp.where(ok, _safe(largest) * jnp.sqrt(rescaled_squares), largest)


def layer_norms(first, hidden, out):
    """Per-layer norms, input side first: first (…), hidden stacked (L-1, …), out."""
    axes = tuple(range(1, hidden.ndim))
    return jnp.concatenate([norm(first)[None], norm(hidden, axes), norm(out)[None]])


def layernorm(z):
    centred = z - jnp.mean(z, axis=-1, keepdims=True)
    var = jnp.mean(centred * centred, axis=-1, keepdims=True)
    return centred / jnp.sqrt(var + LAYERNORM_EPS)


def reduce_delta(g, keep: int):
    """δ's probe reductions over its last two axes (examples, units), packed:
    [δ rows 0..keep-1 | unit alive (δ ≠ 0 for some example; NaN counts) |
     max|δ| | Σ (δ / max|δ|)²]."""
    largest = jnp.max(jnp.abs(g), axis=(-2, -1))
    alive = jnp.any(g != 0, axis=-2).astype(g.dtype)
    squares = jnp.sum(jnp.square(g / _safe(largest)[..., None, None]), axis=(-2, -1))
    rows = g[..., :keep, :].reshape(g.shape[:-2] + (-1,))
    return jnp.concatenate([rows, alive, largest[..., None], squares[..., None]], -1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def tap(z, slot, keep: int):
    """The identity on z. Its VJP hands δ = ∂loss/∂z on and returns δ's reductions as
    the slot's cotangent: δ is reduced while in cache and never stored. (Reducing the
    stacked δ of all layers after the backward pass measured the same on the CPU and
    keeps a batch × width array per layer.)"""
    return z


def _tap_fwd(z, slot, keep):
    return z, None


def _tap_bwd(keep, _, g):
    return g, reduce_delta(g, keep)


tap.defvjp(_tap_fwd, _tap_bwd)


def slot_size(keep: int, units: int) -> int:
    return keep * units + units + 2


def make_loss(spec: RunSpec, keep: int | None) -> Callable:
    """loss(params, slots, x, labels, targets) -> (mean loss, (rows, output)).

    params: stacked (see stack_params); slots: None for a plain step, else zero
    slots {"first", "hidden" (L-1, …), "out"} whose gradients are δ's reductions;
    rows: z(l) and a(l) of the first `keep` examples, hidden layers stacked."""
    act = ACTIVATIONS[spec.activation]
    checkpointing = spec.segments > 1
    alpha = spec.alpha

    def layer(index, a, W, b, slot):
        z = a @ W.T + b
        if slot is not None:
            z = tap(z, slot, keep)
        y = act(layernorm(z) if spec.norm == "layernorm" else z)
        return z, (a + alpha * y if spec.is_residual_layer(index) else y)

    def body(a, xs):  # one hidden layer 2..L (all alike: index 1 stands for them)
        W, b, slot = xs
        z, a = layer(1, a, W, b, slot)
        return a, ((z[:keep], a[:keep]) if keep else None)

    def run_segment(lo, hi):
        def run(a, first, hidden, first_slot, hidden_slots):
            rows0 = None
            if lo == 0:
                z, a = layer(0, a, *first, first_slot)
                rows0 = (z[:keep], a[:keep]) if keep else None
            a, rows = jax.lax.scan(body, a, (*hidden, hidden_slots), unroll=UNROLL)
            return a, rows0, rows
        return jax.checkpoint(run) if checkpointing else run

    runs = [(lo, hi, run_segment(lo, hi)) for lo, hi in segments(spec)]

    def loss(params, slots, x, labels, targets):
        Ws, bs = params["hidden"]
        a, first_rows, hidden_rows = x, None, []
        for lo, hi, run in runs:
            start, stop = max(lo, 1) - 1, hi - 1  # rows of the hidden stack
            hidden = [Ws[start:stop], bs[start:stop]]
            first_slot = None if slots is None else slots["first"]
            hidden_slots = None if slots is None else slots["hidden"][start:stop]
            a, rows0, rows = run(a, params["first"], hidden, first_slot, hidden_slots)
            if rows0 is not None:
                first_rows = rows0
            hidden_rows.append(rows)
        W_out, b_out = params["out"]
        out = a @ W_out.T + b_out
        if slots is not None:
            out = tap(out, slots["out"], keep)
        if spec.loss == "mse":
            value = jnp.mean(jnp.square(out - targets))
        else:
            logp = jax.nn.log_softmax(out, axis=-1)
            value = -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))
        rows = None
        if keep:  # (L, keep, W) each: z and a rows of every hidden layer, input side first
            rows = tuple(jnp.concatenate([first_rows[i][None]] + [r[i] for r in hidden_rows])
                         for i in range(2))
        return value, (rows, out)

    return loss


def _weighted(values: list, weights: list[float]):
    """Σ wₖ·vₖ over pytrees (one part: itself)."""
    if len(values) == 1:
        return values[0]
    return jax.tree.map(lambda *vs: sum(w * v for w, v in zip(weights, vs, strict=True)),
                        *values)


def _update(spec: RunSpec, state: dict, grads: dict, hyper):
    """(new state, ΔW per leaf); hyper = [lr, 1−β₁ᵗ, 1−β₂ᵗ] (engines.optim's rules)."""
    lr, c1, c2 = hyper[0], hyper[1], hyper[2]
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


def _weight_and_bias_norms(tree: dict):
    """(‖W(l)‖, ‖b(l)‖) per layer of a stacked parameter tree."""
    return tuple(layer_norms(tree["first"][i], tree["hidden"][i], tree["out"][i])
                 for i in range(2))


def make_step(spec: RunSpec, probe: bool, spectrum: bool,
              update: bool) -> tuple[Callable, Layout | None]:
    """step(state, x, labels, targets, hyper, units, q0) -> (state, out): out is the
    packed vector of a recorded step (see Layout), else {"loss", "output"}."""
    sizes = part_sizes(spec.batch_size, spec.microbatches)
    batch, depth, width = spec.batch_size, spec.depth, spec.width
    n_sub = probes.subsample_size(batch, width)
    out_dim = spec.out_features
    hidden_k = min(spec.record.delta_samples, width)
    out_k = min(spec.record.delta_samples, out_dim)
    layout = Layout(depth + 1, spec.record.hist_bins, hidden_k, out_k, batch, out_dim,
                    (width if width <= EXACT_MAX_WIDTH else
                     min(spec.record.jacobian_topk, width)) if spectrum else 0)
    grad_fn = jax.value_and_grad(make_loss(spec, keep=n_sub if probe else None),
                                 argnums=(0, 1), has_aux=True)

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
            slots = {"first": jnp.zeros(slot_size(keep, width), dtype),
                     "hidden": jnp.zeros((depth - 1, slot_size(keep, width)), dtype),
                     "out": jnp.zeros(slot_size(keep, out_dim), dtype)} if probe else None
            (value, (rows, out)), (g, reductions) = grad_fn(params, slots, xb, lb, tb)
            losses.append(value)
            grad_parts.append(g)
            outputs.append(out)
            if probe:
                parts.append((size, keep, rows, out[:keep], reductions))
        loss = _weighted(losses, weights)
        grads = _weighted(grad_parts, weights)
        output = outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, 0)
        grad_norms = _weight_and_bias_norms(grads) if probe or spec.clip is not None else None
        scale = None
        if spec.clip is not None:  # min(1, max/‖g‖); 1 when ‖g‖ is not finite
            total = jnp.sqrt(sum(jnp.sum(n * n) for n in grad_norms))
            scale = jnp.where(jnp.isfinite(total) & (total > spec.clip), spec.clip / total, 1.0)
            grads = jax.tree.map(lambda g: g * scale, grads)
        weight_norms = _weight_and_bias_norms(params)[0] if probe else None
        if update:
            state, updates = _update(spec, state, grads, hyper)
        if not probe:
            return state, {"loss": loss, "output": output}
        if not update:
            update_norms = 0.0 * weight_norms
        elif spec.optimizer == "sgd":  # ‖ΔW‖ = lr·(clip scale)·‖∇W‖
            update_norms = hyper[0] * grad_norms[0] * (1.0 if scale is None else scale)
        else:
            update_norms = _weight_and_bias_norms(updates)[0]
        pieces = _summary(spec, parts, n_sub, units[:hidden_k], out_k,
                          (grad_norms[0], grad_norms[1], weight_norms, update_norms))
        pieces += [loss[None], output]
        if spectrum:
            z_rows = parts[0][2][0]  # (L, keep, W); example 0 is in the first part
            pieces.append(_spectrum(spec, state["params"], z_rows[:, 0], q0))
        return state, jnp.concatenate([p.reshape(-1).astype(dtype) for p in pieces])

    return step, (layout if probe else None)


def _summary(spec: RunSpec, parts: list, n_sub: int, units, out_k: int, norms: tuple) -> list:
    """[table, hist, hidden δ samples, output δ samples] in probes.Summary's layout."""
    depth, width, out_dim = spec.depth, spec.width, spec.out_features
    batch = spec.batch_size

    def unpack(reduction, keep, units_):
        rows = reduction[..., :keep * units_]
        rest = reduction[..., keep * units_:]
        return (rows.reshape(rows.shape[:-1] + (keep, units_)), rest[..., :units_],
                rest[..., units_], rest[..., units_ + 1])

    delta_rows, out_rows, squares, alive, alive_out = [], [], 0.0, None, None
    for size, keep, _, _, red in parts:
        first = unpack(red["first"], keep, width)
        hidden = unpack(red["hidden"], keep, width)
        out = unpack(red["out"], keep, out_dim)
        # per-example δ: the part's mean-loss cotangent times the part's size
        delta_rows.append(size * jnp.concatenate([first[0][None], hidden[0]]))
        out_rows.append(size * out[0])
        largest = jnp.concatenate([first[2][None], hidden[2], out[2][None]])
        norm_l = _from_parts(largest, jnp.concatenate([first[3][None], hidden[3],
                                                        out[3][None]]))
        squares = squares + jnp.square(size * norm_l)
        live = jnp.concatenate([first[1][None], hidden[1]]) > 0
        alive = live if alive is None else alive | live
        alive_out = out[1] > 0 if alive_out is None else alive_out | (out[1] > 0)
    delta_norm = jnp.sqrt(squares / batch)  # RMS over the batch of per-example ‖δ(l)‖
    dtype = delta_norm.dtype
    counts = jnp.concatenate([jnp.sum(alive, 1), jnp.sum(alive_out)[None]]).astype(dtype)
    dead = 1.0 - counts / jnp.array([width] * depth + [out_dim], dtype)

    def first_rows(blocks, axis):
        joined = blocks[0] if len(blocks) == 1 else jnp.concatenate(blocks, axis)
        return joined[:, :n_sub] if axis == 1 else joined[:n_sub]

    Z = first_rows([p[2][0] for p in parts], 1)
    A = first_rows([p[2][1] for p in parts], 1)
    z_out = first_rows([p[3] for p in parts], 0)
    D, d_out = first_rows(delta_rows, 1), first_rows(out_rows, 0)
    n = Z.shape[1]
    hidden = _group_stats(spec, spec.activation, Z, A)
    output = _group_stats(spec, "linear", z_out[None], z_out[None])
    columns = [jnp.concatenate([h, o]) for h, o in zip(hidden, output, strict=True)]
    grad_w, grad_b, weight, update = norms
    table = jnp.stack(columns + [dead, delta_norm, grad_w, grad_b, weight, update / weight], 1)
    a_values = [A.reshape(depth, -1), z_out.reshape(1, -1)]
    d_values = [jnp.log10(jnp.abs(D.reshape(depth, -1))),
                jnp.log10(jnp.abs(d_out.reshape(1, -1)))]  # zeros: -inf, out of the bins
    lo, hi, hist_counts = _histograms(a_values + d_values, spec.record.hist_bins)
    layers = depth + 1
    d_zero = jnp.concatenate([jnp.sum(v == -math.inf, 1) for v in d_values])
    d_counts = hist_counts[layers:]
    sizes = jnp.array([n * width] * depth + [n * out_dim])
    d_nonfinite = sizes - jnp.sum(d_counts, 1) - d_zero  # NaN and ±Inf among the δ
    hist = jnp.concatenate([hist_counts[:layers].astype(dtype), d_counts.astype(dtype),
                            jnp.stack([lo[:layers], hi[:layers], lo[layers:], hi[layers:],
                                       d_zero.astype(dtype), d_nonfinite.astype(dtype)], 1)],
                           1)
    return [table, hist, D[:, 0, :][:, units], d_out[0, :out_k][None]]


def _group_stats(spec: RunSpec, activation: str, Z, A) -> list:
    """z and a moments and the saturated fraction of a group (L, n, W), as the host
    reductions compute them."""
    moments = []
    for x in (Z, A):
        mean = jnp.mean(x, axis=(1, 2))
        centred = x - mean[:, None, None]
        moments += [mean, jnp.sqrt(jnp.mean(centred * centred, axis=(1, 2)))]
    layernormed = spec.norm == "layernorm" and activation != "linear"
    u = probes._layernorm(JaxXP, Z) if layernormed else Z
    return moments + [probes._saturated(JaxXP, activation, u)]


def _histograms(values: list, bins: int):
    """probes._histograms over layers of different sizes at once, each padded with
    NaN (outside every bin) to the longest."""
    longest = max(v.shape[1] for v in values)
    padded = [jnp.pad(v, ((0, 0), (0, longest - v.shape[1])), constant_values=jnp.nan)
              for v in values]
    return probes._histograms(JaxXP, jnp.concatenate(padded, 0), bins)


def _spectrum(spec: RunSpec, params: dict, z0, q0):
    """jacobian.singular_values traced, its layer maps scanned over the hidden stack:
    exact for small widths, else randomized subspace iteration from q0; NaN when the
    Jacobian is not finite. z0: z(l) of example 0, (L, W)."""
    # one hidden layer's maps, from jacobian._layer_maps on a two-layer spec with the
    # same residual scale α
    one = spec.replace(depth=2, residual_scale=spec.alpha)
    Ws = params["hidden"][0]
    zs = z0[1:]

    def forward(v, xs):
        W, z = xs
        return _layer_maps(JaxXP, one, [None, W], [None, z[None]])[0][0](v), None

    def backward(u, xs):
        W, z = xs
        return _layer_maps(JaxXP, one, [None, W], [None, z[None]])[0][1](u), None

    def apply(v):
        return jax.lax.scan(forward, v, (Ws, zs))[0]

    def apply_t(u):
        return jax.lax.scan(backward, u, (Ws, zs), reverse=True)[0]

    def svd(m, finite):
        finite = finite & jnp.all(jnp.isfinite(m))
        values = jnp.linalg.svd(jnp.where(finite, m, 0.0), compute_uv=False)
        return jnp.where(finite, values, jnp.nan)

    if spec.width <= EXACT_MAX_WIDTH:
        return svd(apply(jnp.eye(spec.width, dtype=z0.dtype)), jnp.bool_(True))
    Q, finite = q0, jnp.bool_(True)
    for _ in range(ITERATIONS):
        M = apply_t(apply(Q))
        finite = finite & jnp.all(jnp.isfinite(M))
        Q = jnp.linalg.qr(jnp.where(finite, M, 0.0))[0]
    return svd(apply(Q), finite)
