"""The checks that need an NVIDIA GPU, as one short script (it needs numpy, torch and
pytest, none of the web packages):

  1. the torch engine on CUDA agrees with the tape in float64 (20 random configs);
  2. dtype tf32: TF32 matmuls in effect (‖δ‖ error against float64 well above
     float32's, below 5e-2) and the process flag restored afterwards;
  3. benchmarks/probe_overhead.py --device cuda   (goal: probed/plain ≤ 1.10);
  4. benchmarks/phase_sweep.py --device cuda      (goal: 1024 configs ≤ 56 ms).

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


def tf32_check() -> None:
    if DEVICE != "cuda":
        print("tf32: CUDA only, nothing to check in a CPU rehearsal")
        return
    from backproplab.model import RunSpec

    base = RunSpec(engine="torch", device="cuda", depth=20, width=512, input_dim=512,
                   batch_size=256, steps=0, activation="tanh", seed=5)
    before = torch.backends.cuda.matmul.allow_tf32
    ref = next(iter_steps(base.replace(dtype="float64")))["layers"]
    errors = {}
    for dtype in ("float32", "tf32"):
        layers = next(iter_steps(base.replace(dtype=dtype)))["layers"]
        errors[dtype] = max(abs(a["delta_norm"] - b["delta_norm"]) / b["delta_norm"]
                            for a, b in zip(layers, ref, strict=True))
    restored = torch.backends.cuda.matmul.allow_tf32 == before
    ok = errors["tf32"] > 10 * errors["float32"] and errors["tf32"] < 5e-2 and restored
    print(f"tf32: worst relative ‖δ‖ error against float64 {errors['tf32']:.1e} "
          f"(float32 {errors['float32']:.1e}), flag restored: {restored} "
          f"({'OK' if ok else 'FAIL'})")


def main() -> int:
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (rehearsal)"
    print(f"device: {name}, torch {torch.__version__}, numpy {np.__version__}")
    agreement()
    tf32_check()
    env = {"PYTHONPATH": f"{ROOT / 'backend'}:{ROOT / 'benchmarks'}"}
    for script in ("probe_overhead.py", "phase_sweep.py"):
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--device", DEVICE,
                        "--repeats", "3"], check=True, env={**os.environ, **env})
    return 0


if __name__ == "__main__":
    sys.exit(main())
