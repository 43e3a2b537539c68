"""Saved activations against depth per checkpointing strategy, measured on the tape's
meter, on torch autograd's (saved-tensor hooks) and on JAX's (the residuals jax.vjp
keeps, segments jax.checkpoint-ed), as GET /api/memory measures them:
the fitted log-log slopes, peak bytes per depth, the forward work recomputed and the
step time of each strategy relative to no checkpointing (timed side by side).

    python benchmarks/memory.py [--width 128] [--batch 64] [--dtype float32] [--max-depth 1000]
"""

from __future__ import annotations

import argparse

from _timing import machine, paired_ratio, samples_ms
from backproplab.engines import memory
from backproplab.model.spec import RunSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--time-depth", type=int, default=256)
    parser.add_argument("--max-depth", type=int, default=1000)
    args = parser.parse_args()
    spec = RunSpec(width=args.width, batch_size=args.batch, dtype=args.dtype,
                   checkpoint="every", checkpoint_every=args.every)
    depths = memory.depth_grid(hi=args.max_depth)
    report = memory.memory_report(spec, depths)
    s = report["strategies"]
    meters = report["engines"]  # the tape's, torch's and JAX's where installed
    label = {"numpy": "tape", "torch": "torch", "jax": "jax"}

    def of(name: str, meter: str) -> dict:
        return s[name] if meter == "numpy" else s[name][meter]

    print(f"# memory — {machine()} — width {args.width}, batch {args.batch}, {args.dtype}, "
          f"every k = {args.every}")
    names = " / ".join(label[m] for m in meters)
    print("| strategy | " + " | ".join(f"slope ({label[m]})" for m in meters)
          + f" | recomputed forward at L={depths[-1]} ({names}) |")
    print("|---" * (2 + len(meters)) + "|")
    for name in memory.STRATEGIES:
        print(f"| {name} | " + " | ".join(f"{of(name, m)['slope']:.3f}" for m in meters)
              + " | " + " / ".join(f"{of(name, m)['extra_forward'][-1]:.3f}" for m in meters)
              + " |")
    print()
    print("| depth | " + " | ".join(f"{n} {label[m]} MB" for n in memory.STRATEGIES
                                    for m in meters) + " |")
    print("|---" * (1 + len(meters) * len(memory.STRATEGIES)) + "|")
    for i, depth in enumerate(depths):
        cells = [f"{of(n, m)['peak_bytes'][i] / 1e6:.3g}" for n in memory.STRATEGIES
                 for m in meters]
        print(f"| {depth} | " + " | ".join(cells) + " |")
    print()
    # step time of each strategy at one depth, interleaved; ratio to no checkpointing
    at = args.time_depth
    passes = {"numpy": memory.tape_pass, "torch": memory.torch_pass, "jax": memory.jax_pass}
    fns = {}
    for name in memory.STRATEGIES:
        s_at = memory.strategy_spec(spec, name, at, args.every)
        for m in meters:
            fns[f"{name} {m}"] = lambda s_at=s_at, m=m: passes[m](s_at)
    samples = samples_ms(fns, repeats=5, min_time=0.0)
    print(f"| step time at L={at} | " + " | ".join(label[m] for m in meters) + " |")
    print("|---" * (1 + len(meters)) + "|")
    for name in memory.STRATEGIES:
        print(f"| {name} / none | " + " | ".join(
            f"{paired_ratio(samples, f'{name} {m}', f'none {m}'):.2f}" for m in meters) + " |")
    print()
    print("| microbatches k | " + " | ".join(
        f"peak {label[m]} MB | max rel. diff ({label[m]})" for m in meters) + " |")
    print("|---" * (1 + 2 * len(meters)) + "|")
    for row in report["microbatches"]:
        cells = []
        for m in meters:
            prefix = "" if m == "numpy" else f"{m}_"
            cells += [f"{row[prefix + 'peak_bytes'] / 1e6:.3g}",
                      f"{row[prefix + 'max_rel_diff']:.2g}"]
        print(f"| {row['k']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
