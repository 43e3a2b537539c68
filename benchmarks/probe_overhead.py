"""Probing must be nearly free: a plain torch train step (hand-written, autograd)
against the probed engine step (every per-layer statistic, reduced where the data
are, a few transfers per step), side by side in one run; plus the engine's own
unprobed step (probed/engine: the cost of the probes alone), the usual
per-layer-hook-with-.item() approach for reference, and the tape engine with
probes against the bare tape step. Ratios are medians over the repeats of the
ratio of blocks timed one right after the other (robust to slow spells of a
shared machine); the ms columns are plain medians.

    python benchmarks/probe_overhead.py                # CPU sizes
    python benchmarks/probe_overhead.py --device cuda  # the GPU sizes of the issue
"""

from __future__ import annotations

import argparse
import datetime

import numpy as np
import torch

from _timing import machine, paired_ratio, samples_ms, table
from backproplab.engines import make_engine, probes
from backproplab.engines.runner import step_record
from backproplab.engines.torch_engine import torch_kernels
from backproplab.model import RecordSpec, RunSpec
from backproplab.xp import NumpyXP, TorchXP
from backproplab.xp.torch_xp import TorchStandard

CPU_SIZES = [(50, 256, 128)]
# each timed block runs consecutive steps for at least this long, as training does (a
# lone step after an idle pause pays for cold caches and sleeping worker threads)
BLOCK_S = 0.1
GPU_SIZES = [(100, 1024, 256), (500, 1024, 256)]


def spec_for(engine, device, depth, width, batch):
    return RunSpec(engine=engine, device=device, dtype="float32", depth=depth, width=width,
                   batch_size=batch, input_dim=width, activation="tanh", steps=10**6,
                   record=RecordSpec(hist_bins=24, delta_samples=8))


def plain_torch_step(params, x, y, lr=0.01):
    """What anyone would write: forward, autograd, SGD. No statistics."""
    a = x
    for W, b in params[:-1]:
        a = torch.tanh(a @ W.T + b)
    out = a @ params[-1][0].T + params[-1][1]
    loss = torch.mean((out - y) ** 2)
    flat = [p for pair in params for p in pair]
    grads = torch.autograd.grad(loss, flat)
    with torch.no_grad():
        for p, g in zip(flat, grads, strict=True):
            p.sub_(lr * g)
    return loss.item()


def hooked_torch_step(params, x, y, lr=0.01):
    """The usual way: a hook per layer that calls .item() (a host sync per layer)."""
    stats = []
    a = x
    for W, b in params[:-1]:
        z = a @ W.T + b
        z.register_hook(lambda g: stats.append(g.norm().item()))
        a = torch.tanh(z)
        stats.append(a.std().item())
    out = a @ params[-1][0].T + params[-1][1]
    loss = torch.mean((out - y) ** 2)
    flat = [p for pair in params for p in pair]
    grads = torch.autograd.grad(loss, flat)
    with torch.no_grad():
        for p, g in zip(flat, grads, strict=True):
            stats.append(g.norm().item())
            p.sub_(lr * g)
    return loss.item()


def op_counts(depth: int) -> list:
    """aten operations (each a kernel launch on a GPU) of one training step, plain and
    probed the GPU way (batched gathering, device reduction), counted on the CPU:
    the counts depend on depth only, not on width, batch or device."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += 1
            return func(*args, **(kwargs or {}))

    spec = spec_for("torch", "cpu", depth, 16, 8)
    engine = make_engine(spec)
    engine.probe_mode = probes.ProbeMode.DEVICE
    engine.train_step(0, probe=True)
    with Count() as plain:
        engine.train_step(1, probe=False)
    with Count() as probed:
        result = engine.train_step(2, probe=True)
    with Count() as reduce:
        probes.summarize(engine.xp, result.probe, result.norms, spec.activation, spec.norm,
                         spec.record.hist_bins, spec.record.delta_samples, spec.seed,
                         host=False)
    total = probed.n + reduce.n
    return [f"torch, batched probes, depth {depth}", plain.n, probed.n - plain.n, reduce.n,
            f"{total / plain.n:.3f}"]


def with_standard(engine, std):
    """The engine with its namespace's standard part taken from `std`."""
    if isinstance(engine.xp, TorchXP):
        engine.xp = TorchXP(torch, std=std)
        engine.kernels = torch_kernels(torch, engine.xp, engine.net)
    else:
        engine.xp = NumpyXP(std=std)
    return engine


def standard_part_rows(repeats: int) -> list:
    """The probe path with the namespace's standard part from array-api-compat against
    the libraries' own calls, side by side: probed torch steps with host (CPU) and
    device (GPU-style) probes, layernorm included, and the tape's probed step."""
    import array_api_compat.numpy as compat_numpy
    import array_api_compat.torch as compat_torch

    cases = [("torch/cpu, host probes", "torch", "none", None),
             ("torch/cpu, host probes, layernorm", "torch", "layernorm", None),
             ("torch/cpu, device probes + reduction", "torch", "none", probes.ProbeMode.DEVICE),
             ("tape/numpy, probes", "numpy", "none", None)]
    rows = []
    for label, kind, norm, mode in cases:
        spec = spec_for(kind, "cpu", *CPU_SIZES[0]).replace(norm=norm)
        native = torch_native if kind == "torch" else np
        compat = compat_torch if kind == "torch" else compat_numpy
        engines = {"compat": with_standard(make_engine(spec), compat),
                   "native": with_standard(make_engine(spec), native)}
        if mode is not None:
            for engine in engines.values():
                engine.probe_mode = mode
        counter = iter(range(10**9))

        def probed(engine):
            step = next(counter)
            step_record(engine, step, engine.train_step(step, probe=True), 0.0, False)

        samples = samples_ms({name: (lambda e=e: probed(e)) for name, e in engines.items()},
                             repeats=repeats, min_time=BLOCK_S)
        ms = {name: float(np.median(v)) for name, v in samples.items()}
        rows.append([label, ms["native"], ms["compat"],
                     f"{paired_ratio(samples, 'compat', 'native'):.3f}"])
    return rows


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--standard", action="store_true",
                        help="also time the standard part: array-api-compat against native")
    args = parser.parse_args()
    sizes = GPU_SIZES if args.device == "cuda" else CPU_SIZES
    rows = []
    for depth, width, batch in sizes:
        spec = spec_for("torch", args.device, depth, width, batch)
        engine = make_engine(spec)
        params = [(p.detach().clone().requires_grad_(True), q.detach().clone().requires_grad_(True))
                  for p, q in zip(engine.params[0::2], engine.params[1::2], strict=True)]
        x = torch.randn(batch, width, device=engine.device)
        y = torch.randn(batch, 10, device=engine.device)
        counter = iter(range(10**9))

        def probed():
            step = next(counter)
            result = engine.train_step(step, probe=True)
            step_record(engine, step, result, 0.0, False)  # reduce + one transfer

        def unprobed():
            step = next(counter)
            result = engine.train_step(step, probe=False)
            float(engine.xp.host(result.loss))

        fns = {"plain": lambda: (plain_torch_step(params, x, y), sync(args.device)),
               "engine": lambda: (unprobed(), sync(args.device)),
               "probed": lambda: (probed(), sync(args.device)),
               "hooks+item": lambda: (hooked_torch_step(params, x, y), sync(args.device))}
        samples = samples_ms(fns, repeats=args.repeats, min_time=BLOCK_S)
        ms = {name: float(np.median(s)) for name, s in samples.items()}
        rows.append([f"torch/{args.device} ({depth}, {width}, {batch})", ms["plain"],
                     ms["engine"], ms["probed"], ms["hooks+item"],
                     f"{paired_ratio(samples, 'probed', 'plain'):.3f}",
                     f"{paired_ratio(samples, 'probed', 'engine'):.3f}",
                     f"{paired_ratio(samples, 'hooks+item', 'plain'):.3f}"])
    if args.device == "cpu":
        for depth, width, batch in CPU_SIZES:
            spec = spec_for("numpy", "cpu", depth, width, batch)
            engine = make_engine(spec)
            counter = iter(range(10**9))

            def tape_probed():
                step = next(counter)
                step_record(engine, step, engine.train_step(step, probe=True), 0.0, False)

            def tape_plain():
                engine.train_step(next(counter), probe=False)

            samples = samples_ms({"plain": tape_plain, "probed": tape_probed},
                                 repeats=args.repeats, min_time=BLOCK_S)
            ms = {name: float(np.median(s)) for name, s in samples.items()}
            ratio = f"{paired_ratio(samples, 'probed', 'plain'):.3f}"
            rows.append([f"tape/numpy ({depth}, {width}, {batch})", ms["plain"], ms["plain"],
                         ms["probed"], "-", ratio, ratio, "-"])
    ops = [op_counts(depth) for depth, _, _ in GPU_SIZES]
    name = torch.cuda.get_device_name() if args.device == "cuda" else machine()
    print(f"# probe_overhead — {datetime.date.today()} — {name}, torch {torch.__version__}, "
          f"numpy {np.__version__}, float32, tanh")
    print(table(["engine (depth, width, batch)", "plain ms", "engine unprobed ms", "probed ms",
                 "hooks+.item() ms", "probed/plain", "probed/engine", "hooks/plain"], rows))
    print()
    print(table(["kernel launches per step (aten ops)", "plain step", "added by probes",
                 "record reduction", "(probed + reduction)/plain"], ops))

    if args.standard:
        print()
        print(table(["probed step (50, 256, 128), float32", "native ms", "compat ms",
                     "compat/native"], standard_part_rows(args.repeats)))


torch_native = TorchStandard(torch)

if __name__ == "__main__":
    main()
