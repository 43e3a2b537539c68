"""One MLP train step (forward + backward, tanh, float32): the tape, a
hand-written NumPy backprop of the same net, and PyTorch eager autograd on CPU.

All three compute the loss and the gradients of every W and b (none for the input
x). Each ratio is the median over the repeats of the ratio within one repeat, whose
blocks run one right after the other (`_timing.paired_ratio`).

    python benchmarks/tape_vs_torch.py [--quick] [--repeats N] [--against REV] [--sizes D,W,B ...]

`--against REV` also times the tape as it was at git revision REV (a "before"
column, measured side by side with the rest).
"""

from __future__ import annotations

import argparse
import datetime

import numpy as np
import torch

from _timing import machine, package_at, paired_ratio, samples_ms, table
from backproplab import tape
from backproplab.tape import ops

SIZES = [(10, 32, 16), (20, 64, 64), (50, 256, 128), (20, 1024, 256)]


def make_net(depth: int, width: int, batch: int, rng: np.random.Generator):
    params = []
    for _ in range(depth):
        W = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        params.append((W, np.zeros(width, np.float32)))
    x = rng.standard_normal((batch, width)).astype(np.float32)
    y = rng.standard_normal((batch, width)).astype(np.float32)
    return params, x, y


def tape_loss(params, x, y, ops=ops):
    a = x
    for W, b in params:
        a = ops.tanh(ops.dense(a, W, b))
    return ops.mse(a, y)



def hand_step(params, x, y):
    acts = [x]
    a = x
    for W, b in params:
        a = np.tanh(a @ W.T + b)
        acts.append(a)
    diff = a - y
    loss = np.mean(diff * diff)
    g = diff * (2.0 / diff.size)
    grads = []
    for layer in range(len(params) - 1, -1, -1):
        W, _ = params[layer]
        a = acts[layer + 1]
        delta = g * (1.0 - a * a)  # δ(l) = g ⊙ tanh'(z)
        grads.append((delta.T @ acts[layer], delta.sum(axis=0)))
        if layer:  # the input x needs no cotangent (the tape and torch skip it too)
            g = delta @ W
    return loss, grads[::-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--against", metavar="REV", help="also time the tape at this revision")
    parser.add_argument("--sizes", nargs="+", metavar="D,W,B", help="(depth, width, batch)s")
    args = parser.parse_args()
    repeats = args.repeats or (7 if args.quick else 15)
    rows = []
    vg = tape.value_and_grad(tape_loss)
    if args.against:
        before = package_at(args.against, "tape")
        vg_before = before.value_and_grad(lambda p, x, y: tape_loss(p, x, y, before.ops))
    sizes = [tuple(map(int, s.split(","))) for s in args.sizes] if args.sizes else SIZES
    for depth, width, batch in sizes:
        rng = np.random.default_rng(0)
        params, x, y = make_net(depth, width, batch, rng)
        tparams = [(torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True))
                   for W, b in params]
        tx, ty = torch.tensor(x), torch.tensor(y)

        def torch_step():
            a = tx
            for W, b in tparams:
                a = torch.tanh(a @ W.T + b)
            loss = torch.mean((a - ty) ** 2)
            return torch.autograd.grad(loss, [p for pair in tparams for p in pair])

        # correctness first: the three agree (first layer's ∇W: the end of the chain)
        lt, gt = vg(params, x, y)
        lh, gh = hand_step(params, x, y)
        np.testing.assert_allclose(lt, lh, rtol=1e-5)
        np.testing.assert_allclose(gt[0][0], gh[0][0], rtol=2e-3, atol=1e-6)
        np.testing.assert_allclose(torch_step()[0].numpy(), gh[0][0], rtol=2e-3, atol=1e-6)
        fns = {"tape": lambda: vg(params, x, y), "hand": lambda: hand_step(params, x, y),
               "torch": torch_step}
        ratios = [("tape", "hand"), ("tape", "torch"), ("hand", "torch")]
        if args.against:
            np.testing.assert_allclose(vg_before(params, x, y)[1][0][0], gh[0][0], rtol=2e-3,
                                       atol=1e-6)
            fns["before"] = lambda: vg_before(params, x, y)
            ratios += [("before", "hand"), ("tape", "before")]
        samples = samples_ms(fns, repeats=repeats)
        ms = {name: float(np.median(s)) for name, s in samples.items()}
        rows.append([f"({depth}, {width}, {batch})"] + [ms[name] for name in fns]
                    + [f"{paired_ratio(samples, num, den):.2f}" for num, den in ratios])
    print(f"# tape_vs_torch — {datetime.date.today()} — {machine()}, torch "
          f"{torch.__version__}, numpy {np.__version__}"
          + (f"; before = the tape at {args.against}" if args.against else ""))
    print(table(["(depth, width, batch)"] + [f"{name} ms" for name in fns]
                + [f"{num}/{den}" for num, den in ratios], rows))


if __name__ == "__main__":
    main()
