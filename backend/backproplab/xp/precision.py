"""CUDA matmul precision, which torch switches for the whole process.

TF32 (float32 storage, matmuls on tensor cores with a 10-bit mantissa) is a
process-wide flag in torch, not a property of a tensor. Runs share the process
(the server runs several jobs at once), so every piece of CUDA work that launches
matmuls takes one lock and sets the flag it wants for as long as it holds it: a
tf32 run never changes the precision of another run's matmuls. cuBLAS reads the
mode when a kernel is launched, so asynchronous execution after the lock is
released does not matter."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

_LOCK = threading.RLock()


@contextlib.contextmanager
def cuda_matmul_precision(torch: Any, tf32: bool) -> Iterator[None]:
    """Hold the process's CUDA matmul precision at TF32 (or full float32)."""
    with _LOCK:
        matmul = torch.backends.cuda.matmul
        before = matmul.allow_tf32
        matmul.allow_tf32 = tf32
        try:
            yield
        finally:
            matmul.allow_tf32 = before


def lock() -> threading.RLock:
    """The lock itself (tests check that it serializes)."""
    return _LOCK
