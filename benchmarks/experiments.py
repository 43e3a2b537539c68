"""The schoenholz2017 grid (many small training runs) in this process, on a local
pool of 2 processes and as Ray tasks on a 2-CPU Ray node, side by side in one run;
and Ray's own cost per task (a no-op task's round trip and throughput), against
a process pool's.

    python benchmarks/experiments.py                  # 12 × 8 cells, width 64, 100 steps
    python benchmarks/experiments.py --width 128 --steps 300   # the full-size grid
    python benchmarks/experiments.py --ray-address HOST:PORT   # an existing cluster

The grid runs in 4 interleaved chunks (each backend right after the others on
the same chunk), so the machine's slow spells hit all backends alike.

Without --ray-address the script starts its own Ray head (2 CPUs) in a network
namespace with only loopback and a PID namespace of its own (`unshare`, as root),
re-running itself inside, and stops it at the end.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _timing import machine, table
from backproplab.experiments import schoenholz2017
from backproplab.experiments.execute import connect_ray, execute

HEAD = """
set -e
ip link set lo up
"$BIN/ray" start --head --node-ip-address 127.0.0.1 --port 6379 --num-cpus 2 \\
  --include-dashboard false --disable-usage-stats --temp-dir "$WORK/ray" > "$WORK/head.log" 2>&1
trap '"$BIN/ray" stop --force > /dev/null 2>&1' EXIT
"$BIN/python" "$SCRIPT" --ray-address 127.0.0.1:6379 "$@"
"""


def grid_tasks(width: int, steps: int, seed: int = 0) -> list[dict]:
    """The full-size grid (12 σ_w² × 8 depths) at the given width and steps."""
    tasks = schoenholz2017.tasks(False, seed)
    for t in tasks:
        config = t["params"]["config"]
        config.update(width=width, steps=steps,
                      record={**config["record"], "every": steps})
    return tasks


def noop(x: int) -> int:
    return x


def ray_overhead(address: str, n: int = 200) -> dict[str, float]:
    """ms per task: one at a time (submit, wait: the round trip) and all at once."""
    ray = connect_ray(address)
    task = ray.remote(num_cpus=1)(noop)
    ray.get([task.remote(i) for i in range(8)])  # workers up
    t0 = time.perf_counter()
    for i in range(n // 4):
        ray.get(task.remote(i))
    serial = (time.perf_counter() - t0) / (n // 4) * 1e3
    t0 = time.perf_counter()
    ray.get([task.remote(i) for i in range(n)])
    batch = (time.perf_counter() - t0) / n * 1e3
    return {"serial": serial, "batch": batch}


def pool_overhead(n: int = 200) -> dict[str, float]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(noop, range(8)))
        t0 = time.perf_counter()
        for i in range(n // 4):
            pool.submit(noop, i).result()
        serial = (time.perf_counter() - t0) / (n // 4) * 1e3
        t0 = time.perf_counter()
        list(pool.map(noop, range(n)))
        batch = (time.perf_counter() - t0) / n * 1e3
    return {"serial": serial, "batch": batch}


def in_namespace(argv: list[str]) -> int:
    """Re-run this script inside its own network + PID namespace with a Ray head."""
    work = tempfile.mkdtemp(prefix="bpl-bench-", dir="/tmp")
    env = {**os.environ, "BIN": str(Path(sys.executable).parent), "WORK": work,
           "SCRIPT": str(Path(__file__).resolve())}
    try:
        return subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", "bash", "-c",
                               HEAD, "bash", *argv], env=env, cwd=Path(__file__).parent
                              ).returncode
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--ray-address", help="an existing Ray cluster (default: start one)")
    args = parser.parse_args()
    if not args.ray_address:
        return in_namespace(sys.argv[1:])
    tasks = grid_tasks(args.width, args.steps)
    backends = {"in-process": {}, f"pool, {args.workers} workers": {"workers": args.workers},
                "Ray, 2 CPUs": {"ray_address": args.ray_address}}
    # cold starts apart: a pool spawns and imports on every call (as each CLI run does);
    # Ray's workers start once per cluster, so they are warmed up before timing
    t0 = time.perf_counter()
    execute(tasks[:2], workers=args.workers)
    pool_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    execute(tasks[:2], ray_address=args.ray_address)
    ray_first = time.perf_counter() - t0
    # the grid in `chunks` interleaved slices (every chunk a mix of all depths): each
    # backend runs a chunk right after the others, so a slow spell of this shared machine
    # hits all of them; ratios are medians over the chunks of paired ratios
    outputs = {name: [None] * len(tasks) for name in backends}
    seconds = {name: [] for name in backends}
    for k in range(args.chunks):
        indices = list(range(k, len(tasks), args.chunks))
        chunk = [tasks[i] for i in indices]
        for name, kwargs in backends.items():
            t0 = time.perf_counter()
            out, _ = execute(chunk, **kwargs)
            seconds[name].append(time.perf_counter() - t0)
            for i, r in zip(indices, out, strict=True):
                outputs[name][i] = r
    base_out = outputs["in-process"]
    base = np.asarray(seconds["in-process"])
    accuracy = [r["test_accuracy"][-1] for r in base_out]
    figures, checks = schoenholz2017.analyze(tasks, base_out, False)
    rows = []
    for name in backends:
        total = float(np.sum(seconds[name]))
        ratio = float(np.median(base / np.asarray(seconds[name])))
        rows.append([name, len(tasks), total, total / len(tasks) * 1e3, ratio,
                     "yes" if outputs[name] == base_out else "NO"])
    base_s = float(base.sum())
    ray = ray_overhead(args.ray_address)
    pool = pool_overhead()
    import ray as ray_module
    import torch

    stamp = datetime.date.today().isoformat()
    print(f"# experiments — {stamp} — {machine()}, numpy {np.__version__}, "
          f"torch {torch.__version__}, ray {ray_module.__version__}")
    print(f"schoenholz2017 grid: 12 σ_w² × 8 depths (10–100), width {args.width}, "
          f"{args.steps} SGD steps, batch 32, digits; agreement with L < 6ξ_c "
          f"{checks[0]['measured']:.3f}; mean test accuracy {np.mean(accuracy):.3f}")
    print(table(["backend", "runs", "wall s (sum of chunks)", "ms per run",
                 "speed-up vs in-process (median of chunks)", "same numbers"], rows))
    print(f"\npool start (spawn {args.workers}, import, 2 runs): {pool_start:.1f} s; "
          f"Ray's first 2 runs on fresh workers: {ray_first:.1f} s")
    print()
    print(table(["per no-op task", "ms one at a time", "ms in a batch of 200"],
                [["Ray core task", ray["serial"], ray["batch"]],
                 ["process pool (spawn, 2)", pool["serial"], pool["batch"]]]))
    mean_run = base_s / len(tasks) * 1e3
    print(f"\nRay's round trip is {ray['serial'] / mean_run:.1%} of a mean grid run "
          f"({mean_run:.0f} ms in-process)")
    return 0 if all(r[-1] == "yes" for r in rows) and not math.isnan(base_s) else 1


if __name__ == "__main__":
    sys.exit(main())
