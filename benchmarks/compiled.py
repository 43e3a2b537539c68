"""Compiled backprop against eager: the JAX engine's jitted step (one XLA
computation), the torch engine's eager step and the tape's step on the same
network, side by side in one run; the JAX engine's recorded step (every probe
statistic computed inside the step, read back in one transfer) against its plain
step, in wall time and in process CPU time (all of XLA's threads, not the other
processes of a shared machine), and the optimized programs' sizes (operations XLA
launches) and cost-model bytes; and the compile times. float32, tanh, SGD, as the
Lab runs by default.

"floor/plain" is what any recorded step must cost at least: the plain step that
also returns a vector as long as the record (no statistics in it), read back in one
transfer and unpacked as a record is. Where it is above the probed/plain goal, no
design of the statistics can reach the goal while reading a step back at all.

    python benchmarks/compiled.py            # the four sizes
    python benchmarks/compiled.py --quick    # the two small ones
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import time

import jax
import numpy as np
import torch

from _timing import machine, paired_ratio, samples_ms, table
from backproplab.engines import make_engine
from backproplab.engines.jax_probes import unpack
from backproplab.engines.jax_step import make_step
from backproplab.engines.runner import step_record
from backproplab.model import RecordSpec, RunSpec

SIZES = [(10, 32, 16), (20, 64, 64), (50, 256, 128), (20, 1024, 256)]
BLOCK_S = 0.1  # each timed block runs consecutive steps for at least this long
INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?\S+ = (?:\(.*?\)|\S+) ([\w-]+)\(")


def spec_for(engine: str, depth: int, width: int, batch: int) -> RunSpec:
    return RunSpec(engine=engine, device="cpu", dtype="float32", depth=depth, width=width,
                   batch_size=batch, input_dim=width, activation="tanh", steps=10**6,
                   record=RecordSpec(hist_bins=24, delta_samples=8))


def compile_seconds(engine, probe: bool) -> float:
    """XLA compile time of the engine's step (lowering and compiling, no cache)."""
    fn = engine.step_function(probe, False, True)
    with engine.scope():
        args, _ = engine.inputs(0, True)
        start = time.perf_counter()
        fn.lower(engine.state, *args).compile()
    return time.perf_counter() - start


def compiled_cost(engine, probe: bool) -> tuple[int, float]:
    """(operations the optimized step launches, outside and inside its loops; XLA's
    cost-model bytes accessed) of the engine's step."""
    fn = engine.step_function(probe, False, True)
    with engine.scope():
        args, _ = engine.inputs(0, True)
        compiled = fn.lower(engine.state, *args).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return launched_ops(compiled.as_text()), float(cost.get("bytes accessed", float("nan")))


def launched_ops(hlo: str) -> int:
    """Operations of an optimized HLO module that run (fusions, copies, dots, loops),
    in the entry computation and the loops' bodies; views and tuples launch nothing."""
    bodies = set(re.findall(r"body=%?([\w.\-]+)", hlo))
    free = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast"}
    count = 0
    for block in hlo.split("\n\n"):
        lines = block.strip().splitlines()
        if lines and (lines[0].startswith("ENTRY") or lines[0].split()[0].lstrip("%") in bodies):
            count += sum(1 for line in lines[1:]
                         if (m := INSTRUCTION.match(line)) and m.group(1) not in free)
    return count


def cpu_ratio(num, den, repeats: int, block_s: float = BLOCK_S) -> float:
    """Median over repeats of num/den in process CPU time, blocks side by side."""
    for fn in (num, den):
        fn()
    t0 = time.perf_counter()
    den()
    loops = max(1, int(block_s / max(time.perf_counter() - t0, 1e-7)))
    ratios = []
    for _ in range(repeats):
        spent = []
        for fn in (num, den):
            t0 = time.process_time()
            for _ in range(loops):
                fn()
            spent.append(time.process_time() - t0)
        ratios.append(spent[0] / spent[1])
    return float(np.median(ratios))


def stepper(engine, probe: bool, record: bool = False):
    """One training step per call, as a run takes it (the JAX step waited for)."""
    counter = iter(range(10**9))

    def step():
        k = next(counter)
        result = engine.train_step(k, probe=probe)
        if record:
            step_record(engine, k, result, 0.0, False)
        elif getattr(engine, "state", None) is not None:
            jax.block_until_ready(engine.state)
        return result
    return step


def floor_stepper(engine):
    """The plain step plus one output as long as the recorded step's packed record,
    read back in one transfer and unpacked, as train_step does with a record."""
    plain = make_step(engine.key, False, False, True)
    with engine.scope():
        args, _ = engine.inputs(0, True)
        shape = jax.eval_shape(make_step(engine.key, True, False, True), engine.state,
                               *args)[1].shape

    def step(state, *args):
        state, out = plain(state, *args)
        return state, jax.numpy.broadcast_to(out["loss"], shape)

    fn = jax.jit(step, donate_argnums=0)
    counter = iter(range(10**9))

    def call():
        with engine.scope():
            args, _ = engine.inputs(next(counter), True)
            engine.state, out = fn(engine.state, *args)
            unpack(engine.spec, np.asarray(jax.device_get(out), np.float64), False)
    return call


def measure(depth: int, width: int, batch: int, repeats: int) -> list:
    engines = {name: make_engine(spec_for(name, depth, width, batch))
               for name in ("jax", "torch", "numpy")}
    jx = engines["jax"]
    compile_plain, compile_probed = compile_seconds(jx, False), compile_seconds(jx, True)
    fns = {"jax": stepper(jx, False), "jax probed": stepper(jx, True),
           "jax recorded": stepper(jx, True, record=True),
           "torch": stepper(engines["torch"], False), "tape": stepper(engines["numpy"], False)}
    samples = samples_ms(fns, repeats=repeats, min_time=BLOCK_S)
    med = {k: float(np.median(v)) for k, v in samples.items()}
    cpu = cpu_ratio(fns["jax probed"], fns["jax"], repeats)
    floor = cpu_ratio(floor_stepper(jx), fns["jax"], repeats)
    (ops_plain, bytes_plain), (ops_probed, bytes_probed) = (compiled_cost(jx, p)
                                                            for p in (False, True))
    return [f"({depth}, {width}, {batch})", med["jax"], med["torch"], med["tape"],
            paired_ratio(samples, "torch", "jax"), paired_ratio(samples, "tape", "jax"),
            paired_ratio(samples, "jax probed", "jax"), cpu, floor,
            paired_ratio(samples, "jax recorded", "jax"), f"{ops_plain} / {ops_probed}",
            bytes_probed / bytes_plain, compile_plain, compile_probed]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the two small sizes only")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    sizes = SIZES[:2] if args.quick else SIZES
    rows = [measure(*size, args.repeats) for size in sizes]
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"# compiled — {datetime.datetime.now():%Y-%m-%d %H:%M} — {machine()}, load {load}, "
          f"jax {jax.__version__}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"numpy {np.__version__}, {os.cpu_count()} cores; float32, tanh, SGD")
    print(table(["(depth, width, batch)", "jax jit ms", "torch eager ms", "tape ms",
                 "torch/jax", "tape/jax", "probed/plain", "probed/plain cpu",
                 "floor/plain cpu",
                 "recorded/plain", "ops plain / probed", "bytes probed/plain",
                 "compile plain s", "compile probed s"], rows))


if __name__ == "__main__":
    main()
