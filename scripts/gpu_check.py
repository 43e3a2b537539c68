"""The checks that need a GPU, prepared as one short script for a session that is
lent one (the device has numpy, torch and pytest, none of the web packages):

  1. the torch engine on CUDA agrees with the tape in float64 (20 random configs);
  2. benchmarks/probe_overhead.py --device cuda   (issue: probed/plain ≤ 1.10);
  3. benchmarks/phase_sweep.py --device cuda      (issue: 1024 configs ≤ 56 ms).

    PYTHONPATH=backend:tests:benchmarks python3 scripts/gpu_check.py
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from backproplab.engines import iter_steps, make_engine

ROOT = Path(__file__).resolve().parent.parent
DEVICE = os.environ.get("GPU_CHECK_DEVICE", "cuda")  # "cpu" to rehearse the script here


def agreement() -> None:
    from test_engines_agree import CONFIGS, KEYS

    worst = 0.0
    t0 = time.perf_counter()
    for spec in CONFIGS:
        cuda = spec.replace(engine="torch", device=DEVICE)
        for a, b in zip(iter_steps(spec), iter_steps(cuda, engine=make_engine(cuda)),
                        strict=True):
            for la, lb in zip(a["layers"], b["layers"], strict=True):
                for key in KEYS:
                    x, y = la[key], lb[key]
                    if math.isfinite(x) and math.isfinite(y) and abs(y) > 1e-14:
                        worst = max(worst, abs(x - y) / abs(y))
    status = "OK" if worst < 1e-10 else "FAIL"
    print(f"tape vs torch/{DEVICE} float64, {len(CONFIGS)} configs: worst relative difference "
          f"{worst:.2e} ({status}, {time.perf_counter() - t0:.1f} s)")


def main() -> int:
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (rehearsal)"
    print(f"device: {name}, torch {torch.__version__}, numpy {np.__version__}")
    agreement()
    env = {"PYTHONPATH": f"{ROOT / 'backend'}:{ROOT / 'benchmarks'}"}
    for script in ("probe_overhead.py", "phase_sweep.py"):
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--device", DEVICE,
                        "--repeats", "3"], check=True, env={**os.environ, **env})
    return 0


if __name__ == "__main__":
    sys.exit(main())
