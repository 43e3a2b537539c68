"""Synthetic data sets, generated deterministically per (seed, step)."""

from __future__ import annotations

import numpy as np

from .spec import RunSpec


def _teacher(spec: RunSpec) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng([spec.seed, 0x7EAC])
    sizes = [spec.in_features, 32, spec.out_features]
    return [(rng.standard_normal((o, i)) / np.sqrt(i), 0.1 * rng.standard_normal(o))
            for i, o in zip(sizes[:-1], sizes[1:], strict=True)]


def _spirals(rng: np.random.Generator, n: int, arms: int = 3):
    labels = rng.integers(0, arms, n)
    r = rng.uniform(0.05, 1.0, n)
    theta = labels * (2 * np.pi / arms) + 3.0 * r + rng.normal(0, 0.15, n)
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1) * 2.0, labels


def _circles(rng: np.random.Generator, n: int):
    labels = rng.integers(0, 2, n)
    radius = np.where(labels == 0, 0.5, 1.5) + rng.normal(0, 0.15, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1), labels


def _xor(rng: np.random.Generator, n: int):
    x = rng.uniform(-1.5, 1.5, (n, 2))
    return x, ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)


def batch(spec: RunSpec, step: int, size: int | None = None):
    """(x, labels, targets) for one step: targets are one-hot for classification
    data (used by mse), teacher outputs for gaussian data; labels feed cross-entropy."""
    n = size or spec.batch_size
    rng = np.random.default_rng([spec.seed, 0xDA7A, step])
    if spec.dataset == "gaussian":
        x = rng.standard_normal((n, spec.in_features))
        h = x
        teacher = _teacher(spec)
        for k, (W, b) in enumerate(teacher):
            h = h @ W.T + b
            h = np.tanh(h) if k < len(teacher) - 1 else h
        return x, np.argmax(h, axis=1), h
    x, labels = {"spirals": _spirals, "circles": _circles, "xor": _xor}[spec.dataset](rng, n)
    return x, labels, np.eye(spec.out_features)[labels]
