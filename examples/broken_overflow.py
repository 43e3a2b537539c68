"""A broken network: an exponential "activation" in a deep MLP on the digits. As
training grows the weights, one layer's output overflows float32 to +Inf and the loss
turns NaN; backproplab's first_nonfinite names the module where it began.

    python examples/broken_overflow.py
"""

from __future__ import annotations

import argparse
from collections import OrderedDict

import torch
from sklearn.datasets import load_digits
from torch import nn

import backproplab


class Exp(nn.Module):
    """exp(x): unbounded, the bug in this network (softplus was meant)."""

    def forward(self, x):
        return torch.exp(x)


def model(width: int = 32, depth: int = 6) -> nn.Sequential:
    layers: dict[str, nn.Module] = {"fc0": nn.Linear(64, width), "tanh0": nn.Tanh()}
    for i in range(1, depth + 1):
        layers[f"fc{i}"], layers[f"exp{i}"] = nn.Linear(width, width), Exp()
    layers["out"] = nn.Linear(width, 10)
    return nn.Sequential(OrderedDict(layers))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", default="broken_overflow.jsonl")
    parser.add_argument("--server", default=None)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target)
    net = model()
    opt = torch.optim.SGD(net.parameters(), lr=0.06)
    with backproplab.watch(net, out=args.out, server=args.server, name="broken: exp") as w:
        for step in range(args.steps):
            idx = torch.arange(step * 64, step * 64 + 64) % len(x)
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
            w.step(loss)
            opt.zero_grad()
            if w.first_nonfinite is not None:
                break
    found = w.first_nonfinite
    if found:
        print(f"first non-finite value at step {found['step']}: the {found['what']} of "
              f"module {found['module']!r} ({found['in']} pass)")
    else:
        print("no overflow in this many steps")
    return {"first_nonfinite": found, "steps": step + 1}


if __name__ == "__main__":
    main()
