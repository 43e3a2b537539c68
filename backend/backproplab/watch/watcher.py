"""The watcher: hooks on during recorded steps only, one reduction and one transfer
per recorded step, the record written and pushed as it goes."""

from __future__ import annotations

import collections
import math
import time
from pathlib import Path
from typing import Any, NamedTuple

from . import capture, modules, record, reduce


class SampleBuffers(NamedTuple):
    """Every weight's sampled entries end to end (see Watcher._samples_layout)."""

    lengths: list[int]  # entries of weight k
    snapshot: Any  # their copies from the forward pass
    work: Any  # twice as long: the differences from now, then the snapshot's squares
    snaps: list  # weight k's view of `snapshot`
    both: Any  # lengths twice, as a tensor (segment_reduce over `work`)
    segments: list[int]  # their segments in reduce.param_norms


class Watcher:
    """Returned by `backproplab.watch(model, ...)`; call `step(loss)` once per optimizer
    step, after `optimizer.step()` (or `scaler.step(...)`); a context manager."""

    def __init__(self, model: Any, every: int = 1, out: str | Path | None = None,
                 server: str | None = None, name: str | None = None, scaler: Any = None,
                 modules_: str | list[str] = "leaves", hist_bins: int = 24,
                 secret: str | None = None, update_ratio: bool = True, keep: int = 1000,
                 seed: int = 0):
        import torch
        import torch.distributed as dist

        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if not 4 <= hist_bins <= 128:
            raise ValueError(f"hist_bins must be in 4..128, got {hist_bins}")
        root = modules.unwrap(model)
        self.model, self.every, self.bins, self.scaler = root, every, hist_bins, scaler
        self.world_size = dist.get_world_size() if dist.is_available() and \
            dist.is_initialized() else 1
        # under DDP the gradients are the same on every rank after backward: rank 0
        # records them, the others do nothing at all
        self.active = self.world_size == 1 or dist.get_rank() == 0
        self.name = name or type(root).__name__
        self.step_index = 0
        self.closed = False
        self.first_nonfinite: dict | None = None
        self.steps: collections.deque = collections.deque(maxlen=keep)
        self.head: dict | None = None
        if not self.active:
            return
        self.watched = modules.select(root, modules_)
        watched_ids = {id(p) for w in self.watched for p in w.params}
        others = [p for p in root.parameters() if p.requires_grad and id(p) not in watched_ids]
        self.plan = reduce.Plan(
            saturation=[reduce.KIND_CODES.get(modules.SATURATING.get(w.kind, ""), 0.0)
                        for w in self.watched],
            rectifier=[w.kind in modules.RECTIFIERS for w in self.watched],
            weights=[w.weights for w in self.watched], biases=[w.biases for w in self.watched],
            others=others, bins=hist_bins)
        first = next(root.parameters(), None)
        self.device = first.device if first is not None else torch.device("cpu")
        self.dtype = first.dtype if first is not None else torch.float32
        self.acc = torch.float64 if self.dtype == torch.float64 else torch.float32
        self.sample_index = capture.SampleIndex(seed)
        self.update_ratio = update_ratio
        # flat positions of each module's weights; their sampled entries (fixed views)
        self.weight_slots, k = [], 0
        for ws in self.plan.weights:
            self.weight_slots.append(range(k, k + len(ws)))
            k += len(ws)
        self.weight_samples = [self._weight_sample(p) for ws in self.plan.weights
                               for p in ws] if update_ratio else []
        self.samples_flat: SampleBuffers | None = None  # see _samples_layout
        self.delta_hooks = [capture.delta_hook(self, i) for i in range(len(self.watched))]
        self._forward_hooks = [capture.forward_hook(self, i, self.plan.rectifier[i])
                               for i in range(len(self.watched))]
        self._grad_hook = capture.grad_hook(self)
        # each watched parameter and its segment in reduce.param_norms (group·M + module)
        self.grad_slots = [(p, group * len(self.watched) + i)
                           for i, w in enumerate(self.watched)
                           for group, params in ((0, w.weights), (1, w.biases)) for p in params]
        self._has: dict = {}
        self.handles: list = []
        self.rows = capture.Rows(len(self.watched), self.acc, self.device)
        self.capture = capture.StepCapture(len(self.watched), self.rows)
        self.order: list[int] | None = None
        # the losses of steps not recorded, kept on the device and checked for NaN/±Inf
        # all at once with the next recorded step (a check per step cost 0.1 ms)
        self.unrecorded: list[tuple[int, Any]] = []
        self.file = record.LineFile(out) if out is not None else None
        self.pusher = None
        if server is not None:
            from .push import Pusher
            from .secret import read_secret

            secret = secret or read_secret()
            if not secret:
                raise ValueError("no secret to push with: start `backproplab serve` first "
                                 "(it creates the secret file), or pass secret=...")
            self.pusher = Pusher(server, secret)
        self.start = time.perf_counter()
        if self._recorded(0):
            self._attach()

    # --- hooks on for recorded steps, off otherwise --------------------------------
    def _recorded(self, step: int) -> bool:
        return step % self.every == 0

    def _attach(self) -> None:
        """A forward hook per watched module and a post-accumulate-grad hook per
        parameter. (One process-wide forward hook handing each output to its module's
        hook registers faster, ~0.15 ms less per recorded step of a 41-module MLP, but
        torch.compile then warns on every compiled call that global hooks fire an
        extra time.)"""
        for w, hook in zip(self.watched, self._forward_hooks, strict=True):
            self.handles.append(w.module.register_forward_hook(hook))
        for p, _ in self.grad_slots:
            self.handles.append(p.register_post_accumulate_grad_hook(self._grad_hook))

    def _detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def _weight_sample(self, p: Any) -> tuple:
        view, count = capture.weight_sample(p)
        idx = None if view is not None else self.sample_index.get(p.numel(), p.device)[0][:count]
        return p, view, idx, p.data_ptr()

    def _sampled(self, k: int) -> Any:
        """Weight k's sampled entries as they are now: a view sees the optimizer's
        in-place update; a weight whose storage was replaced is sampled anew."""
        import torch

        p, view, idx, ptr = self.weight_samples[k]
        if view is not None and p.data_ptr() != ptr:
            p, view, idx, ptr = self.weight_samples[k] = self._weight_sample(p)
        return view if view is not None else torch.take(p.detach(), idx)

    def _samples_layout(self) -> None:
        """Every weight's sampled entries end to end in one flat buffer (n_k entries
        for weight k): `snapshot` holds their copies from the forward pass, `work`
        (twice as long) their differences from now and, after them, their squares;
        one segment_reduce sums each weight's part."""
        import torch

        lengths = [self._sampled(k).numel() for k in range(len(self.weight_samples))]
        total, modules = sum(lengths), len(self.watched)
        snapshot = torch.zeros(total, dtype=self.acc, device=self.device)
        work = torch.empty(2 * total, dtype=self.acc, device=self.device)
        starts = [sum(lengths[:k]) for k in range(len(lengths))]
        module_of = [i for i, slots in enumerate(self.weight_slots) for _ in slots]
        self.samples_flat = SampleBuffers(
            lengths, snapshot, work,
            [snapshot[a:a + n] for a, n in zip(starts, lengths, strict=True)],
            torch.tensor(lengths + lengths, device=self.device),
            [3 * modules + i for i in module_of] + [4 * modules + i for i in module_of])

    def snapshot_samples(self, i: int) -> None:
        """Copy module i's weights' sampled entries as they are now (its forward hook,
        before the optimizer's update) into the snapshot buffer."""
        if self.samples_flat is None:
            self._samples_layout()
        flat = self.samples_flat
        for k in self.weight_slots[i]:
            now = self._sampled(k)
            if now.numel() != flat.lengths[k]:  # a weight replaced by one of another size
                self._samples_layout()
                return self.snapshot_samples(i)
            flat.snaps[k].copy_(now)
        return None

    def update_squares(self) -> tuple[Any, list[int]]:
        """Σ (ΔW)² and Σ W² over each weight's sampled entries (W: the snapshot), in
        one (2K,) tensor, and their segments for reduce.param_norms."""
        import torch

        flat = self.samples_flat
        snapshot, work = flat.snapshot, flat.work
        total = snapshot.numel()
        torch.mul(snapshot, snapshot, out=work[total:])
        now = [self._sampled(k) for k in range(len(flat.lengths))]
        if any(v.device != self.device for v in now):
            now = [v.to(self.device) for v in now]
        diff = torch.cat(now, out=work[:total]).sub_(snapshot)
        diff.mul_(diff)
        return torch.segment_reduce(work, "sum", lengths=flat.both, unsafe=True), \
            flat.segments

    # --- one optimizer step ---------------------------------------------------------
    def step(self, loss: Any = None, grad_norm: Any = None,
             accuracy: float | None = None) -> dict | None:
        """Record this optimizer step if it is one of every `every` (then return its
        step record); `grad_norm` is the total norm clip_grad_norm_ returned (before
        clipping). Call after the optimizer's step and before zero_grad."""
        if self.closed:
            raise RuntimeError("this watcher is closed")
        s = self.step_index
        result = None
        if self.active:
            if self._recorded(s):
                result = self._record(s, loss, grad_norm, accuracy)
            else:
                self._check_loss(s, loss)
        self.step_index += 1
        if self.active:
            upcoming = self._recorded(s + 1)
            if upcoming:
                self.capture = capture.StepCapture(len(self.watched), self.rows)
                if not self.handles:
                    self._attach()
            else:
                if self.handles:
                    self._detach()
                # let go of what the recorded step held (its gradients above all: kept
                # alive past zero_grad, they cost the steps that follow fresh memory)
                self.capture = None
        return result

    def _check_loss(self, s: int, loss: Any) -> None:
        """The loss of a step that is not recorded: a tensor is kept (no kernel, no
        sync) for `_pending_losses` at the next recorded step."""
        if self.first_nonfinite is not None or loss is None:
            return
        import torch

        if isinstance(loss, torch.Tensor):
            self.unrecorded.append((s, loss.detach()))
        elif not math.isfinite(float(loss)):
            self.first_nonfinite = {"step": s, "module": None, "in": "forward",
                                    "what": "loss"}

    def _pending_losses(self) -> tuple[list[int], list]:
        """The unrecorded steps' losses kept since the last recorded step, to travel
        with this step's transfer: (steps, tensors), each tensor one value: the loss,
        or for a loss of several values whether all were finite (1 or 0)."""
        kept, self.unrecorded = self.unrecorded, []
        if not kept or self.first_nonfinite is not None:
            return [], []
        import torch

        return [s for s, _ in kept], [t if t.numel() == 1 else torch.isfinite(t).all()
                                      for _, t in kept]

    @staticmethod
    def _first_bad(steps: list[int], values: list, tensors: list) -> int | None:
        """The first of `steps` whose loss was NaN/±Inf (values as they came back)."""
        import torch

        for s, v, t in zip(steps, values, tensors, strict=True):
            if (t.dtype is torch.bool and v != 1.0) or not math.isfinite(v):
                return s
        return None

    def _norm_inputs(self) -> tuple[list, list, list, dict]:
        """For reduce.param_norms: the weights' norms from the modules' forward pass
        (before the update), each watched gradient as it is at the optimizer step
        (unscaled, clipped, synchronized), their segments, and which modules have
        which."""
        cap, modules = self.capture, len(self.watched)
        taken, segments = [], []
        for i, found in enumerate(cap.w_norms):
            if found:
                taken += found
                segments += [2 * modules + i] * len(found)
        grads = []
        for p, segment in self.grad_slots:
            g = p.grad
            if g is None:
                g = cap.grads.get(id(p))
                if g is None:
                    continue
            grads.append(g.detach() if g.requires_grad else g)
            segments.append(segment)
        key = tuple(segments)
        has = self._has.get(key)
        if has is None:
            if len(self._has) > 16:
                self._has.clear()
            seen = set(segments)
            has = self._has[key] = {
                name: [group * modules + i in seen for i in range(modules)]
                for group, name in enumerate(("grad_w", "grad_b", "weight"))}
        return taken, grads, segments, has

    def _record(self, s: int, loss: Any, grad_norm: Any, accuracy: Any) -> dict:
        import torch

        cap = self.capture
        if not cap.order:
            raise RuntimeError(
                "no watched module ran a forward pass with gradients since the last "
                "step(): call step() once per optimizer step, after backward (a module "
                "compiled before watch() was called runs without its hooks: watch first, "
                "then compile)")
        if self.order is None:  # forward order, fixed from the first recorded step
            seen = set(cap.order)
            self.order = list(cap.order) + [i for i in range(len(self.watched))
                                            if i not in seen]
        taken, cold, segments, has = self._norm_inputs()
        modules = len(self.watched)
        # the sampled entries now against their copies from the forward pass (a module
        # without a forward this step has none: its stale values are not reported)
        squares = None
        if any(cap.w_snap):
            squares, update_segments = self.update_squares()
            segments += update_segments
        has = {**has, "update": [bool(snap) and g for snap, g in zip(cap.w_snap, has["grad_w"],
                                                                     strict=True)]}
        other_grads = [p.grad for p in self.plan.others if p.grad is not None]
        extras = [loss if loss is not None else math.nan,
                  torch.linalg.vector_norm(torch.stack(torch._foreach_norm(other_grads)))
                  if other_grads else 0.0,
                  cap.scale if cap.scale is not None else math.nan,
                  self.scaler._get_scale_async() if self.scaler is not None
                  and cap.scale is not None else math.nan,
                  grad_norm if grad_norm is not None else math.nan]
        # the losses of the steps not recorded since the last one, checked on the host
        pending_steps, pending = self._pending_losses()
        extras += pending
        norms = reduce.param_norms(torch, taken, cold, squares, tuple(segments), modules,
                                   self.acc, self.device)
        packed = reduce.device_summary(cap, self.plan, norms, extras, self.device, self.acc)
        names = [w.name for w in self.watched]
        kinds = [w.kind for w in self.watched]
        layers, tail, finite = reduce.host_layers(packed, names, kinds, self.order, self.plan,
                                                  cap, has)
        loss_v, other_norm, scale, scale_now, pre_clip = (float(v) for v in tail[:5])
        bad = self._first_bad(pending_steps, tail[5:].tolist(), pending) if pending else None
        step = {"step": s, "loss": loss_v if loss is not None else None,
                "accuracy": None if accuracy is None else float(accuracy),
                "time_s": time.perf_counter() - self.start, "layers": layers}
        skipped = False
        if not math.isnan(scale):  # δ were of the scaled loss S·L: report ∂L/∂output
            skipped = scale_now < scale  # the scaler found inf/NaN and skipped the step
            shift = math.log10(scale) if scale > 0 else 0.0
            for layer in layers:
                if layer["delta_norm"] is not None:
                    layer["delta_norm"] /= scale
                    hist = layer["delta_log_hist"]
                    hist["lo"], hist["hi"] = hist["lo"] - shift, hist["hi"] - shift
            step["loss_scale"] = scale
            step["scaler_skipped"] = skipped
        total = math.sqrt(sum((layer[k] or 0.0) ** 2 for layer in layers
                              for k in ("grad_w_norm", "grad_b_norm")) + other_norm ** 2)
        if grad_norm is not None:  # the norm before clipping, and the factor it applied
            step["grad_norm"] = pre_clip
            # ‖g after‖ / ‖g before‖; clipping only shrinks (float32 rounding can
            # put an unclipped step a hair above 1)
            step["clip_factor"] = min(1.0, total / pre_clip) if pre_clip > 0 else 1.0
        else:
            step["grad_norm"] = total
        if self.first_nonfinite is None and bad is not None:
            self.first_nonfinite = {"step": bad, "module": None, "in": "forward",
                                    "what": "loss"}
        # a finite table, not divided by a loss scale: every layer value is finite, so
        # only the step's own numbers need a look (walking 41 layers cost 0.3 ms)
        table_finite = finite and math.isnan(scale) and all(
            math.isfinite(r) for r in (layer["update_ratio"] for layer in layers) if r is not None)
        if self.first_nonfinite is None:
            backward = [] if table_finite else [self.order.index(i) for i in cap.backward_order]
            found = record.first_nonfinite(s, [] if table_finite else layers, backward,
                                           step["loss"], skipped)
            if found is not None:
                self.first_nonfinite = step["first_nonfinite"] = found
        self._emit(step, finite and (record.scalars_finite(step) if table_finite
                                     else record.all_finite(step)))
        return step

    # --- output -----------------------------------------------------------------------
    def _emit(self, step: dict, finite: bool) -> None:
        """Write and push the step, encoded once (`finite`: no NaN/±Inf in it, so the
        codec need not walk it)."""
        if self.head is None:
            summary = modules.summary(self.model, self.watched)
            self.head = {"schema": record.SCHEMA,
                         "config": record.config(self.name, self.model,
                                                 [summary[i] for i in self.order], self.every,
                                                 self.bins, self.dtype, self.device,
                                                 self.scaler is not None),
                         "environment": record.environment(self.device, self.dtype,
                                                           self.world_size),
                         "theory": None}
            if self.file is not None:
                self.file.write(self.head)
            if self.pusher is not None:
                self.pusher.put("head", self.head)
        line = record.encode_line(step, finite)
        # kept encoded: a thousand steps of layer dicts would be a few hundred thousand
        # objects for the garbage collector to walk again and again (0.3–0.6 ms a step)
        self.steps.append(line)
        if self.file is not None:
            self.file.write_line(line)
        if self.pusher is not None:
            self.pusher.put("step", line)

    def record(self) -> dict:
        """The run record so far ({schema, config, environment, theory, steps,
        first_nonfinite}; steps: the newest `keep` recorded)."""
        head = self.head or {"schema": record.SCHEMA, "config": None, "environment": None,
                             "theory": None}
        from ..runs.codec import decode

        return {**head, "steps": [decode(line) for line in self.steps],
                "first_nonfinite": self.first_nonfinite}

    def close(self) -> None:
        """Remove the hooks, finish the file and the push (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if not self.active:
            return
        self._detach()
        if self.first_nonfinite is None and self.unrecorded:
            steps, pending = self._pending_losses()
            values = [float(t.detach().reshape(())) for t in pending]  # one sync, at the end
            bad = self._first_bad(steps, values, pending) if steps else None
            if bad is not None:
                self.first_nonfinite = {"step": bad, "module": None,
                                        "in": "forward", "what": "loss"}
        end = {"first_nonfinite": self.first_nonfinite, "steps_seen": self.step_index}
        if self.file is not None:
            if self.head is not None:
                self.file.write(end)
            self.file.close()
        if self.pusher is not None:
            self.pusher.put("end", end)
            self.pusher.close()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # hooks must not outlive a forgotten watcher
        try:
            if not self.closed and getattr(self, "handles", None):
                self._detach()
        except Exception:
            pass
