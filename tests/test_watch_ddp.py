"""Under DistributedDataParallel (gloo, two processes on 127.0.0.1 in a loopback-only
network namespace) rank 0 records the synchronized gradients and rank 1 nothing;
checked against one process training on the whole batch, in float64."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from backproplab.runs.jsonl import parse_record  # noqa: E402

WORKER = textwrap.dedent("""
    import os, sys
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    import backproplab

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(),
                                   torch.nn.Linear(8, 3)).double()

    def main(rank, out):
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:29533", rank=rank,
                                world_size=2)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(16, 5, generator=g, dtype=torch.float64)
        y = torch.randint(0, 3, (16,), generator=g)
        ddp = torch.nn.parallel.DistributedDataParallel(model())
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        with backproplab.watch(ddp, out=os.path.join(out, f"rank{rank}.jsonl")) as w:
            for _ in range(2):
                part = slice(8 * rank, 8 * rank + 8)
                loss = torch.nn.functional.cross_entropy(ddp(x[part]), y[part])
                loss.backward()
                opt.step()
                assert (w.step(loss) is None) == (rank == 1)
                opt.zero_grad()
        dist.destroy_process_group()
        # torch's gloo threads can abort the interpreter's own shutdown ("terminate called
        # without an active exception", also with no watcher at all): the watcher has
        # closed its file above, so leave without that shutdown.
        os._exit(0)

    if __name__ == "__main__":
        mp.spawn(main, args=(sys.argv[1],), nprocs=2)
""")


def reference():
    """One process, the whole batch: the mean of the two ranks' mean losses."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(),
                            torch.nn.Linear(8, 3)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (16,), generator=g)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    steps = []
    for _ in range(2):
        outs = {}

        def keep(name):
            def hook(mod, inputs, out):
                out.retain_grad()
                outs[name] = out
            return hook

        handles = [mod.register_forward_hook(keep(n)) for n, mod in m.named_modules() if n]
        local = torch.nn.functional.cross_entropy(m(x[:8]), y[:8])  # rank 0's own δ
        local.backward()
        deltas = {n: float(o.grad.norm()) for n, o in outs.items()}
        for h in handles:
            h.remove()
        m.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        grads = {n: float(mod.weight.grad.norm()) for n, mod in m.named_modules()
                 if isinstance(mod, torch.nn.Linear)}
        opt.step()
        opt.zero_grad()
        steps.append((deltas, grads))
    return steps


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare for a loopback-only "
                                                        "network namespace")
def test_rank_zero_records_the_synchronized_gradients(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["unshare", "-n", "bash", "-c",
                           f'ip link set lo up && exec "{sys.executable}" "{script}" '
                           f'"{tmp_path}"'], env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "rank1.jsonl").exists()  # the other ranks do nothing
    record = parse_record((tmp_path / "rank0.jsonl").read_bytes())
    assert record["environment"]["world_size"] == 2
    assert [s["step"] for s in record["steps"]] == [0, 1]
    for step, (deltas, grads) in zip(record["steps"], reference(), strict=True):
        for layer in step["layers"]:
            assert math.isclose(layer["delta_norm"], deltas[layer["name"]], rel_tol=1e-10)
            if layer["name"] in grads:
                assert math.isclose(layer["grad_w_norm"], grads[layer["name"]], rel_tol=1e-10)
