"""A small residual CNN (BatchNorm, in-place ReLUs) on scikit-learn's bundled 8×8
handwritten digits, watched with backproplab.

    python examples/digits_cnn.py                      # writes digits_cnn.jsonl
    python examples/digits_cnn.py --server http://127.0.0.1:8000   # live in the Watch page
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

import backproplab


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)  # used twice, in place, as in torchvision's ResNet
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class DigitsNet(nn.Module):
    def __init__(self, channels: int = 16, blocks: int = 2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[ResidualBlock(channels) for _ in range(blocks)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, 10)

    def forward(self, x):
        return self.head(self.pool(self.blocks(self.stem(x))).flatten(1))


def digits():
    data = load_digits()  # 1797 images shipped inside scikit-learn: no download
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return x, torch.tensor(data.target)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--out", default="digits_cnn.jsonl")
    parser.add_argument("--server", default=None)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    x, y = digits()
    train, test = slice(0, 1500), slice(1500, None)
    model = DigitsNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    with backproplab.watch(model, every=args.every, out=args.out, server=args.server,
                           name="digits CNN") as w:
        for _ in range(args.steps):
            idx = torch.randint(0, 1500, (64,), generator=g)
            logits = model(x[train][idx])
            loss = nn.functional.cross_entropy(logits, y[train][idx])
            loss.backward()
            opt.step()
            accuracy = (logits.argmax(1) == y[train][idx]).float().mean()
            w.step(loss, accuracy=float(accuracy))
            opt.zero_grad()
    model.eval()
    with torch.no_grad():
        test_accuracy = float((model(x[test]).argmax(1) == y[test]).float().mean())
    print(f"test accuracy {test_accuracy:.3f}; record in {args.out}")
    return {"test_accuracy": test_accuracy, "first_nonfinite": w.first_nonfinite}


if __name__ == "__main__":
    main()
