"""A small pre-LN transformer learning to reverse random token sequences (a synthetic
task: nothing to download), watched with backproplab.

    python examples/transformer.py                     # writes transformer.jsonl
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import backproplab


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        out = nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-LN: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(dim), SelfAttention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Reverser(nn.Module):
    def __init__(self, vocab: int = 16, length: int = 12, dim: int = 64, heads: int = 4,
                 depth: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(length, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, vocab)

    def forward(self, tokens):
        return self.out(self.ln(self.blocks(self.embed(tokens) + self.pos)))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--out", default="transformer.jsonl")
    parser.add_argument("--server", default=None)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    vocab, length = 16, 12
    model = Reverser(vocab, length)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    with backproplab.watch(model, every=args.every, out=args.out, server=args.server,
                           name="pre-LN transformer") as w:
        for _ in range(args.steps):
            tokens = torch.randint(0, vocab, (32, length), generator=g)
            logits = model(tokens)
            loss = nn.functional.cross_entropy(logits.reshape(-1, vocab),
                                               tokens.flip(1).reshape(-1))
            loss.backward()
            total = nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            w.step(loss, grad_norm=total)
            opt.zero_grad()
            losses.append(loss.item())
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}; record in {args.out}")
    return {"first_loss": losses[0], "last_loss": losses[-1],
            "first_nonfinite": w.first_nonfinite}


if __name__ == "__main__":
    main()
