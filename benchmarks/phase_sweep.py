"""Measured phase diagrams: every grid point's network built and measured at once
(one batched matmul per layer for the whole grid), against a straightforward
per-config loop, side by side; plus the analytic diagram.

    python benchmarks/phase_sweep.py                 # CPU: 16×16 at (20, 128, 16)
    python benchmarks/phase_sweep.py --device cuda   # GPU: 32×32 at (50, 256, 32)
"""

from __future__ import annotations

import argparse
import datetime
import math
import time

import numpy as np
import torch

from _timing import machine, table
from backproplab.model.activations import ACTIVATIONS
from backproplab.theory import phase
from backproplab.xp import TorchXP


def loop_sweep(act, w2s, b2s, depth, width, batch, device):
    """One network at a time: the straightforward way."""
    xp = TorchXP(torch)
    record = ACTIVATIONS[act]
    gen = torch.Generator(device=device).manual_seed(0)
    out = []
    for b2 in b2s:
        for w2 in w2s:
            h = torch.randn(batch, width, generator=gen, device=device)
            Ws, zs = [], []
            for _ in range(depth):
                W = torch.randn(width, width, generator=gen, device=device) * math.sqrt(
                    w2 / width)
                b = torch.randn(width, generator=gen, device=device) * math.sqrt(b2)
                z = h @ W.T + b
                h = record.phi(z, xp)
                Ws.append(W)
                zs.append(z)
            g = torch.randn(batch, width, generator=gen, device=device)
            norms = []
            for layer in range(depth - 1, -1, -1):
                delta = g * record.dphi(zs[layer], xp)
                norms.append(float(delta.square().sum()))
                g = delta @ Ws[layer]
            out.append(norms)
    return out


def timed(fn, repeats, device):
    fn()  # warm up
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.device == "cuda":
        cases = [(32, 50, 256, 32), (16, 50, 256, 32)]
    else:
        cases = [(16, 20, 128, 16), (8, 20, 128, 16)]
    rows = []
    for grid, depth, width, batch in cases:
        w2 = np.linspace(0.5, 4.0, grid)
        b2 = np.linspace(0.0, 0.5, grid)
        batched = timed(lambda: phase.measured("tanh", w2, b2, depth, width, batch,
                                               device=args.device), args.repeats, args.device)
        analytic = timed(lambda: phase.analytic("tanh", w2, b2, depth), 1, "cpu")
        loop = timed(lambda: loop_sweep("tanh", w2, b2, depth, width, batch, args.device), 1,
                     args.device) if grid <= 16 else math.nan
        rows.append([f"{grid}×{grid} ({grid * grid} nets)", f"({depth}, {width}, {batch})",
                     batched, loop, f"{loop / batched:.2f}" if loop == loop else "-",
                     analytic, f"{1000 / batched:.1f}"])
    name = torch.cuda.get_device_name() if args.device == "cuda" else machine()
    print(f"# phase_sweep — {datetime.date.today()} — {name}, torch {torch.__version__}, "
          f"float32, tanh")
    print(table(["grid", "(depth, width, batch)", "batched ms", "per-config loop ms",
                 "loop/batched", "analytic ms", "diagrams/s"], rows))


if __name__ == "__main__":
    main()
