"""Shared timing helpers for the benchmarks: interleaved repeats, median ms, and a
subpackage as it was at a git revision (a "before" timed in the same run)."""

from __future__ import annotations

import atexit
import importlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np


def median_ms(fns: dict[str, Callable[[], object]], repeats: int = 15,
              min_time: float = 0.02, settle: float = 0.05) -> dict[str, float]:
    """Median ms per call of each function, timed side by side (see samples_ms)."""
    samples = samples_ms(fns, repeats, min_time, settle)
    return {name: float(np.median(s)) for name, s in samples.items()}


def paired_ratio(samples: dict[str, list[float]], num: str, den: str) -> float:
    """Median over the repeats of num/den, each ratio from blocks timed one right
    after the other: slow spells of a shared machine hit both sides of a ratio."""
    return float(np.median(np.asarray(samples[num]) / np.asarray(samples[den])))


def samples_ms(fns: dict[str, Callable[[], object]], repeats: int = 15,
               min_time: float = 0.02, settle: float = 0.05) -> dict[str, list[float]]:
    """Time several functions side by side, interleaved, so drift hits all alike:
    ms per call of each function in each repeat.

    `settle` seconds pass between blocks: OpenMP (torch) and OpenBLAS (numpy) worker
    threads spin for a while after a call, and would otherwise slow whichever
    function runs next on a 2-core machine."""
    for fn in fns.values():
        fn()  # warm up
    loops = {}
    for name, fn in fns.items():
        n, t0 = 1, time.perf_counter()
        fn()
        elapsed = time.perf_counter() - t0
        loops[name] = max(1, int(min_time / max(elapsed, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            n = loops[name]
            time.sleep(settle)
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t0) / n * 1e3)
    return samples


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"


def table(header: list[str], rows: list[list[object]]) -> str:
    cells = [header] + [[f"{c:.3g}" if isinstance(c, float) else str(c) for c in r]
                        for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def package_at(rev: str, name: str) -> ModuleType:
    """backproplab.<name> as it was at git revision `rev`, imported as `<name>_at_rev`
    (its relative imports of the rest of backproplab point at the installed one)."""
    root = Path(__file__).resolve().parent.parent
    folder = f"backend/backproplab/{name}/"
    names = subprocess.run(["git", "-C", str(root), "ls-tree", "--name-only", rev, folder],
                           capture_output=True, text=True, check=True).stdout.split()
    package = Path(tempfile.mkdtemp()) / f"{name}_at_rev"
    package.mkdir()
    atexit.register(shutil.rmtree, package.parent, True)
    for path in names:
        source = subprocess.run(["git", "-C", str(root), "show", f"{rev}:{path}"],
                                capture_output=True, text=True, check=True).stdout
        source = source.replace("from .. import", "from backproplab import")
        (package / Path(path).name).write_text(source.replace("from ..", "from backproplab."))
    sys.path.insert(0, str(package.parent))
    return importlib.import_module(f"{name}_at_rev")
