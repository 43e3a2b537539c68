"""Saved activations against depth per checkpointing strategy, measured on the tape's
meter and on torch autograd's (saved-tensor hooks), as GET /api/memory measures them:
the fitted log-log slopes, peak bytes per depth, the forward work recomputed and the
step time of each strategy relative to no checkpointing (timed side by side).

    python benchmarks/memory.py [--width 128] [--batch 64] [--dtype float32]
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
    args = parser.parse_args()
    spec = RunSpec(width=args.width, batch_size=args.batch, dtype=args.dtype,
                   checkpoint="every", checkpoint_every=args.every)
    depths = memory.depth_grid()
    report = memory.memory_report(spec, depths)
    s = report["strategies"]
    print(f"# memory — {machine()} — width {args.width}, batch {args.batch}, {args.dtype}, "
          f"every k = {args.every}")
    print("| strategy | slope (tape) | slope (torch) | recomputed forward at L=1000 "
          "(tape / torch) |")
    print("|---|---|---|---|")
    for name in memory.STRATEGIES:
        print(f"| {name} | {s[name]['slope']:.3f} | {s[name]['torch']['slope']:.3f} | "
              f"{s[name]['extra_forward'][-1]:.3f} / "
              f"{s[name]['torch']['extra_forward'][-1]:.3f} |")
    print()
    print("| depth | " + " | ".join(f"{n} tape MB | {n} torch MB" for n in memory.STRATEGIES)
          + " |")
    print("|---" * (1 + 2 * len(memory.STRATEGIES)) + "|")
    for i, depth in enumerate(depths):
        cells = []
        for name in memory.STRATEGIES:
            cells += [f"{s[name]['peak_bytes'][i] / 1e6:.3g}",
                      f"{s[name]['torch']['peak_bytes'][i] / 1e6:.3g}"]
        print(f"| {depth} | " + " | ".join(cells) + " |")
    print()
    # step time of each strategy at one depth, interleaved; ratio to no checkpointing
    at = args.time_depth
    fns = {}
    for name in memory.STRATEGIES:
        s_at = memory.strategy_spec(spec, name, at, args.every)
        fns[f"{name} tape"] = lambda s_at=s_at: memory.tape_pass(s_at)
        fns[f"{name} torch"] = lambda s_at=s_at: memory.torch_pass(s_at)
    samples = samples_ms(fns, repeats=7, min_time=0.0)
    print(f"| step time at L={at} | tape | torch |")
    print("|---|---|---|")
    for name in memory.STRATEGIES:
        print(f"| {name} / none | {paired_ratio(samples, f'{name} tape', 'none tape'):.2f} | "
              f"{paired_ratio(samples, f'{name} torch', 'none torch'):.2f} |")
    print()
    print("| microbatches k | peak tape MB | max rel. diff (tape) | peak torch MB | "
          "max rel. diff (torch) |")
    print("|---|---|---|---|---|")
    for row in report["microbatches"]:
        print(f"| {row['k']} | {row['peak_bytes'] / 1e6:.3g} | {row['max_rel_diff']:.2g} | "
              f"{row['torch_peak_bytes'] / 1e6:.3g} | {row['torch_max_rel_diff']:.2g} |")


if __name__ == "__main__":
    main()
