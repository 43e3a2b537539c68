"""What the hooks keep during one recorded step, and the hooks themselves.

Forward hook (after module m ran): the sum of its output (exact mean; a NaN or ±Inf
anywhere makes it non-finite), a fixed random subsample of SAMPLE values (moments and
the histogram), for rectifiers the number of units whose maximum over the batch is 0
(dead units), at
its first call of the step ‖W‖ of its weights and a copy of their sampled entries
(before the optimizer's update, while the weights are in cache); and a tensor hook
on the output. The values are copied out at once, before any in-place op
that follows can change them; the tensor hook, registered before such an op, receives
∂L/∂(output as the module returned it), which is δ of the module.

Tensor hook (δ arrives): ‖δ‖ and a subsample of δ. The first call of a module in a
step writes its sum, ‖δ‖ and both samples straight into its rows of buffers kept
from step to step (`Rows`: the reduction reads them as they are, with no stacking);
a second call's sum and ‖δ‖ are kept apart and added in. Post-accumulate-grad hook on each
parameter: a reference to its gradient (read once, at the optimizer step, so several
backward calls report the accumulated gradient; a norm taken here, while the gradient
is in cache, cost more in the hook than it saved at the step, and would miss what
the scaler, clipping or DDP do to the gradient afterwards).

Nothing here leaves the device and nothing is reduced across modules: each hook
launches two or three small kernels; `reduce` does the rest once per step."""

from __future__ import annotations

from typing import Any

SAMPLE = 1024  # values per module for moments and histograms (the Lab uses the same)


def accumulator(dtype: Any) -> Any:
    """The dtype sums are taken in: float64 for float64 models, float32 otherwise."""
    import torch

    return torch.float64 if dtype == torch.float64 else torch.float32


class SampleIndex:
    """A fixed random subset of SAMPLE flat positions per tensor size (sorted, so the
    gather reads memory forwards), padded cyclically when the tensor is smaller; the
    padding is masked out downstream by `count`."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.cache: dict = {}

    def get(self, numel: int, device: Any) -> tuple[Any, int]:
        key = (numel, device)
        found = self.cache.get(key)
        if found is None:
            import torch

            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + numel)
            if numel > SAMPLE:
                idx = torch.randperm(numel, generator=gen)[:SAMPLE].sort().values
                count = SAMPLE
            else:
                idx = torch.arange(SAMPLE) % max(numel, 1)
                count = numel
            found = self.cache[key] = (idx.to(device), count)
        return found


class Rows:
    """Buffers the hooks write into, kept from step to step: row i of `values` holds
    module i's output sample, row M + i its δ sample; `sums` the sums of the
    outputs, `norms` the ‖δ‖, `dead` the rectifiers' dead units (first call of each
    module in the step), with a view per module made once."""

    def __init__(self, modules: int, dtype: Any, device: Any):
        import torch

        self.dtype, self.device = dtype, device
        self.values = torch.zeros((2 * modules, SAMPLE), dtype=dtype, device=device)
        self.a = list(self.values[:modules])
        self.d = list(self.values[modules:])
        self.sums = torch.zeros(modules, dtype=dtype, device=device)
        self.norms = torch.zeros(modules, dtype=dtype, device=device)
        self.dead = torch.zeros(modules, dtype=dtype, device=device)  # rectifiers' dead units
        self.sum_at, self.norm_at, self.dead_at = list(self.sums), list(self.norms), \
            list(self.dead)
        self.dims = {n: tuple(range(n)) for n in range(1, 9)}  # sum over every dim


class StepCapture:
    """Per-module lists for one optimizer step (module i = position in `watched`)."""

    def __init__(self, modules: int, rows: Rows):
        self.rows = rows
        self.order: list[int] = []  # forward order of first calls this step
        self.backward_order: list[int] = []  # order in which δ first arrived
        self.out_numel = [0] * modules
        self.a_sample: list = [None] * modules  # its row of rows.values, once written
        self.a_count = [0] * modules
        self.units = [0] * modules  # rectifiers: how many units (elements per example)
        self.d_sample: list = [None] * modules
        self.d_count = [0] * modules
        # the sums and ‖δ‖ of a module's second and later calls in the step
        self.more_sums: dict[int, list] = {}
        self.more_norms: dict[int, list] = {}
        self.grads: dict = {}  # id(param) -> its .grad after the latest accumulation
        # at the module's first forward of the step, so before the optimizer's update
        # (and while the weights are in cache): ‖W‖ per weight, and whether a copy of
        # each weight's sampled entries (for ‖ΔW‖/‖W‖) went into the snapshot buffer
        self.w_norms: list = [None] * modules
        self.w_snap: list = [False] * modules
        self.scale = None  # the GradScaler scale the backward ran with


def first_tensor(output: Any) -> Any:
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    return None


def forward_hook(watcher: Any, i: int, rectifier: bool):
    import torch

    take, vector_norm, Tensor = torch.take, torch.linalg.vector_norm, torch.Tensor
    weights = watcher.plan.weights[i]
    sampled = watcher.update_ratio and bool(weights)

    def hook(module, inputs, output):
        t = output if isinstance(output, Tensor) else first_tensor(output)
        if t is None or not t.is_floating_point() or not torch.is_grad_enabled():
            return  # an evaluation pass (no_grad) is not part of the training step
        cap = watcher.capture
        rows = cap.rows
        y = t.detach()
        cap.out_numel[i] += y.numel()
        if cap.a_sample[i] is not None:  # a second call in this step
            cap.more_sums.setdefault(i, []).append(torch.sum(y, dtype=accumulator(y.dtype)))
        else:
            cap.order.append(i)
            idx, cap.a_count[i] = watcher.sample_index.get(y.numel(), y.device)
            row = cap.a_sample[i] = rows.a[i]
            if y.dtype == rows.dtype and y.device == rows.device and y.dim() in rows.dims:
                torch.sum(y, rows.dims[y.dim()], out=rows.sum_at[i])
                take(y, idx, out=row)
            else:  # another dtype or device: copied over
                rows.sum_at[i].copy_(torch.sum(y, dtype=accumulator(y.dtype)))
                row.copy_(take(y, idx))
            if rectifier and y.dim() >= 2:  # dead units: 0 for every example
                dead = torch.amax(y.reshape(y.shape[0], -1), 0) == 0
                cap.units[i] = dead.numel()
                if dead.device == rows.device:
                    torch.sum(dead, (0,), dtype=rows.dtype, out=rows.dead_at[i])
                else:
                    rows.dead_at[i].copy_(dead.sum())
            if weights:
                cap.w_norms[i] = [vector_norm(p.detach()) for p in weights]
                if sampled:
                    watcher.snapshot_samples(i)
                    cap.w_snap[i] = True
        if t.requires_grad:
            t.register_hook(watcher.delta_hooks[i])

    return hook


def delta_hook(watcher: Any, i: int):
    import torch

    take, vector_norm = torch.take, torch.linalg.vector_norm

    def hook(grad):
        cap = watcher.capture
        rows = cap.rows
        if cap.d_sample[i] is not None:  # δ of a second call in this step
            cap.more_norms.setdefault(i, []).append(
                vector_norm(grad, dtype=accumulator(grad.dtype)))
            return None
        cap.backward_order.append(i)
        idx, cap.d_count[i] = watcher.sample_index.get(grad.numel(), grad.device)
        row = cap.d_sample[i] = rows.d[i]
        if grad.dtype == rows.dtype and grad.device == rows.device:
            vector_norm(grad, out=rows.norm_at[i])
            take(grad, idx, out=row)
        else:
            rows.norm_at[i].copy_(vector_norm(grad, dtype=accumulator(grad.dtype)))
            row.copy_(take(grad, idx))
        if watcher.scaler is not None and cap.scale is None:
            cap.scale = watcher.scaler._get_scale_async().detach().clone()
        return None

    return hook


def grad_hook(watcher: Any):
    def hook(param):
        watcher.capture.grads[id(param)] = param.grad

    return hook


def weight_sample(p: Any) -> tuple[Any, int]:
    """≤ SAMPLE entries of weight p spread over it: a view at a fixed stride coprime
    with its rows' length (so every column is visited), or the whole weight; (None,
    n) for a weight that is not contiguous (then sampled with an index)."""
    import math

    n = p.numel()
    flat = p.detach()
    if n <= SAMPLE:
        return flat.reshape(-1) if p.is_contiguous() else None, n
    if not p.is_contiguous():
        return None, n
    step = n // SAMPLE
    row = p.shape[-1] if p.dim() else 1
    while step > 1 and math.gcd(step, row) != 1:
        step -= 1
    return flat.view(-1)[::step][:SAMPLE], SAMPLE
