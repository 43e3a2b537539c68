"""What watching costs per training step: a plain step against the same step under
backproplab.watch(every=1) and watch(every=10), and side by side in the same run the
usual ways to look at gradients: wandb.watch(log="all", log_freq=1) offline,
TensorBoard add_histogram of every parameter and gradient, the plot_grad_flow idiom
(mean |grad| per parameter with .item()) and torch.autograd.detect_anomaly. On an MLP
(depth 20, width 256, batch 128) and a small 4-conv CNN; one torch thread. Every
variant trains its own copy of the model from the same initialization; every step
ends with loss.item(), as a training loop's logging does. Ratios are medians over
the repeats of the ratio of blocks timed one right after the other.

    python benchmarks/watch_overhead.py            # re-runs itself in a loopback-only
                                                   # network namespace for wandb
    python benchmarks/watch_overhead.py --repeats 25
    python benchmarks/watch_overhead.py --no-wandb --against HEAD~3   # before → now

`--against REV` adds to the CPU-time table the watcher as it was at git revision REV
(run from a copy of its package), alternating block by block with the current one.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
from torch import nn

from _timing import machine, package_at, paired_ratio, samples_ms, table

NETNS_FLAG = "BACKPROPLAB_BENCH_NETNS"


def mlp(depth: int = 20, width: int = 256) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(64 * 7 * 7, 10))


def batches(kind: str):
    g = torch.Generator().manual_seed(0)
    if kind == "mlp":
        return torch.randn(128, 256, generator=g), torch.randint(0, 10, (128,), generator=g)
    return torch.randn(32, 1, 28, 28, generator=g), torch.randint(0, 10, (32,), generator=g)


class Variant:
    """One way of training: a model copy, its optimizer, and what it does per step."""

    def __init__(self, base: nn.Module, x, y):
        self.model = copy.deepcopy(base)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-3)
        self.x, self.y = x, y

    def loss(self):
        return nn.functional.cross_entropy(self.model(self.x), self.y)

    def finish(self):
        self.opt.step()
        self.opt.zero_grad()


def plain(v: Variant):
    def step():
        loss = v.loss()
        loss.backward()
        v.finish()
        return loss.item()
    return step



def watched(v: Variant, every: int, out: str, package=None):
    import backproplab

    w = (package or backproplab).watch(v.model, every=every, out=out)

    def step():
        loss = v.loss()
        loss.backward()
        v.opt.step()
        w.step(loss)
        v.opt.zero_grad()
        return loss.item()
    return step, w


def wandb_watched(v: Variant, tmp: str):
    import wandb

    run = wandb.init(project="backproplab-bench", mode="offline", dir=tmp, reinit=True)
    wandb.watch(v.model, log="all", log_freq=1)

    def step():
        loss = v.loss()
        loss.backward()
        v.finish()
        value = loss.item()
        wandb.log({"loss": value})  # wandb.watch's histograms go out with a log call
        return value
    return step, run


def tensorboard(v: Variant, tmp: str):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(tmp)
    count = [0]

    def step():
        loss = v.loss()
        loss.backward()
        for name, p in v.model.named_parameters():
            writer.add_histogram(f"param/{name}", p, count[0])
            writer.add_histogram(f"grad/{name}", p.grad, count[0])
        v.finish()
        count[0] += 1
        return loss.item()
    return step, writer


def grad_flow(v: Variant):
    """The plot_grad_flow idiom: mean |grad| of each weight, one .item() each."""
    def step():
        loss = v.loss()
        loss.backward()
        ave = [p.grad.abs().mean().item() for n, p in v.model.named_parameters()
               if p.requires_grad and "bias" not in n]
        v.finish()
        return loss.item() + 0 * len(ave)
    return step


def anomaly(v: Variant):
    def step():
        loss = v.loss()
        with torch.autograd.detect_anomaly():
            loss.backward()
        v.finish()
        return loss.item()
    return step


def measure(kind: str, repeats: int, with_wandb: bool) -> list[list]:
    torch.manual_seed(0)
    base = mlp() if kind == "mlp" else cnn()
    x, y = batches(kind)
    tmp = tempfile.mkdtemp(prefix="backproplab-bench-")
    closers = []
    fns = {"plain": plain(Variant(base, x, y))}
    for every in (1, 10):
        fn, w = watched(Variant(base, x, y), every, os.path.join(tmp, f"watch{every}.jsonl"))
        fns[f"watch(every={every})"] = fn
        closers.append(w.close)
    if with_wandb:
        fn, run = wandb_watched(Variant(base, x, y), tmp)
        fns["wandb.watch(log=all, log_freq=1)"] = fn
        closers.append(run.finish)
    fn, writer = tensorboard(Variant(base, x, y), tmp)
    fns["TensorBoard add_histogram"] = fn
    closers.append(writer.close)
    fns["plot_grad_flow (.item() per param)"] = grad_flow(Variant(base, x, y))
    fns["detect_anomaly"] = anomaly(Variant(base, x, y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # detect_anomaly warns on every call
        samples = samples_ms(fns, repeats=repeats, min_time=0.15, settle=0.03)
    for close in closers:
        close()
    shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for name in fns:
        rows.append([kind, name, float(np.median(samples[name])),
                     paired_ratio(samples, name, "plain") if name != "plain" else 1.0])
    return rows


def thread_blocks(fns: dict, blocks: int) -> dict[str, list[float]]:
    """ms per step of each variant by this thread's CPU time: ten steps each to warm
    up, then `blocks` rounds of one block of 10 steps per variant, one after the other."""
    for fn in fns.values():
        for _ in range(10):
            fn()
    ms: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(blocks):
        for name, fn in fns.items():
            t0 = time.thread_time()
            for _ in range(10):
                fn()
            ms[name].append((time.thread_time() - t0) * 100)
    return ms


def cpu_time(kind: str, blocks: int, before=None) -> list[list]:
    """plain, watch(every=1) and watch(every=10) by this thread's CPU time
    (time.thread_time: what the other processes of a shared machine take is not
    counted), `blocks` interleaved blocks of 10 steps; ratios paired block by block.
    `before`: an earlier version of the watch package, timed alongside."""
    torch.manual_seed(0)
    base = mlp() if kind == "mlp" else cnn()
    x, y = batches(kind)
    tmp = tempfile.mkdtemp(prefix="backproplab-bench-")
    fns, closers = {"plain": plain(Variant(base, x, y))}, []
    for label, package in (("", None), ("before: ", before)):
        if label and package is None:
            continue
        for every in (1, 10):
            fn, w = watched(Variant(base, x, y), every,
                            os.path.join(tmp, f"cpu{label[:1]}{every}.jsonl"), package)
            fns[f"{label}watch(every={every})"] = fn
            closers.append(w.close)
    ms = thread_blocks(fns, blocks)
    for close in closers:
        close()
    shutil.rmtree(tmp, ignore_errors=True)
    rows = [[kind, name, float(np.median(ms[name])),
             paired_ratio(ms, name, "plain") if name != "plain" else 1.0] for name in fns]
    if before is not None:  # the change itself, paired block by block
        rows += [[kind, f"now / before, every={every}", "–",
                  paired_ratio(ms, f"watch(every={every})", f"before: watch(every={every})")]
                 for every in (1, 10)]
    return rows


def mechanism(kind: str, blocks: int) -> list[list]:
    """What torch's hooks cost before any statistic: a forward hook on every leaf
    module that does nothing, the same hook registering a tensor hook on the output
    that does nothing (the δ capture's floor), and watch(every=1); thread CPU time,
    interleaved blocks of 10 steps, ratios paired block by block."""
    torch.manual_seed(0)
    base = mlp() if kind == "mlp" else cnn()
    x, y = batches(kind)

    def hooked(forward_hook):
        v = Variant(base, x, y)
        for m in v.model.modules():
            if not list(m.children()):
                m.register_forward_hook(forward_hook)
        return plain(v)

    def nothing(grad):
        return None

    def tensor_hook(module, inputs, output):
        output.register_hook(nothing)  # (a forward hook's return value replaces the output)

    tmp = tempfile.mkdtemp(prefix="backproplab-bench-")
    fn, w = watched(Variant(base, x, y), 1, os.path.join(tmp, "mechanism.jsonl"))
    fns = {"plain": plain(Variant(base, x, y)),
           "forward hooks, empty": hooked(lambda m, i, o: None),
           "+ a tensor hook per output, empty": hooked(tensor_hook),
           "watch(every=1)": fn}
    ms = thread_blocks(fns, blocks)
    w.close()
    shutil.rmtree(tmp, ignore_errors=True)
    plain_ms = np.array(ms["plain"])
    return [[kind, name, float(np.median(ms[name])),
             float(np.median(np.array(ms[name]) - plain_ms)),
             paired_ratio(ms, name, "plain") if name != "plain" else 1.0] for name in fns]


def in_namespace() -> bool:
    return os.environ.get(NETNS_FLAG) == "1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-wandb", action="store_true")
    parser.add_argument("--cpu-blocks", type=int, default=20,
                        help="blocks of 10 steps for the CPU-time table (0: none)")
    parser.add_argument("--against", metavar="REV",
                        help="also time the watcher at this git revision (CPU-time table)")
    parser.add_argument("--cpu-only", action="store_true",
                        help="only the CPU-time table (no wall-clock table, no anchors)")
    parser.add_argument("--mechanism", action="store_true",
                        help="also what torch's hooks alone cost (empty hooks), thread CPU")
    args = parser.parse_args()
    with_wandb = not args.no_wandb
    if with_wandb and not in_namespace():
        # wandb runs only where nothing but loopback can be reached
        if shutil.which("unshare") and subprocess.run(
                ["unshare", "-n", "true"], capture_output=True).returncode == 0:
            env = {**os.environ, NETNS_FLAG: "1", "WANDB_MODE": "offline",
                   "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true"}
            cmd = (f'ip link set lo up && exec "{sys.executable}" '
                   + " ".join(f'"{a}"' for a in sys.argv))
            sys.exit(subprocess.run(["unshare", "-n", "bash", "-c", cmd], env=env).returncode)
        print("(no unshare here: wandb is left out, it runs only in a loopback-only "
              "network namespace)")
        with_wandb = False
    if with_wandb:
        try:
            import wandb  # noqa: F401
        except ImportError:
            print("(wandb is not installed: `pip install .[bench]`; left out)")
            with_wandb = False
    torch.set_num_threads(1)
    before = package_at(args.against, "watch") if args.against else None
    rows = []
    for kind in ("mlp", "cnn") if not args.cpu_only else ():
        rows += measure(kind, args.repeats, with_wandb)
    print(f"# watch overhead — {datetime.datetime.now():%Y-%m-%d %H:%M}, {machine()}, "
          f"torch {torch.__version__}, numpy {np.__version__}, 1 torch thread")
    print("mlp: depth 20, width 256, batch 128; cnn: 4 conv layers, 1×28×28, batch 32\n")
    if rows:
        print(table(["model", "per step", "ms", "× plain"], rows))
    if args.cpu_blocks:
        load = os.getloadavg()[0]
        cpu = [row for kind in ("mlp", "cnn") for row in cpu_time(kind, args.cpu_blocks, before)]
        print(f"\nthread CPU time, {args.cpu_blocks} interleaved blocks of 10 steps, "
              f"load average {load:.1f} → {os.getloadavg()[0]:.1f}"
              + (f"; before: the watcher at {args.against}" if before else "") + "\n")
        print(table(["model", "per step", "CPU ms", "× plain"], cpu))
    if args.mechanism:
        load = os.getloadavg()[0]
        rows = [row for kind in ("mlp", "cnn") for row in mechanism(kind, args.cpu_blocks or 20)]
        print(f"\nthe hooks alone, thread CPU time, {args.cpu_blocks or 20} interleaved blocks of "
              f"10 steps, load average {load:.1f} → {os.getloadavg()[0]:.1f}\n")
        print(table(["model", "per step", "CPU ms", "added ms", "× plain"], rows))


if __name__ == "__main__":
    main()
