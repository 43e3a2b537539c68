"""backproplab.watch against autograd: in float64 every watched module's ‖δ‖ equals
‖output.grad‖ of the same model without in-place ops (retain_grad), every gradient
norm equals ‖p.grad‖; accumulation, clipping, AMP with a GradScaler, in-place ops,
every=k, first_nonfinite, compiled models."""

from __future__ import annotations

import copy
import math

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import backproplab  # noqa: E402
from backproplab.runs.jsonl import parse_record  # noqa: E402

TOL = 1e-10


def close(a, b, tol=TOL):
    return a is not None and abs(a - b) <= tol * max(1.0, abs(b))


class Block(nn.Module):
    """A residual block with BatchNorm and a ReLU that is in place when asked."""

    def __init__(self, width: int, inplace: bool):
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.bn = nn.BatchNorm1d(width)
        self.act = nn.ReLU(inplace=inplace)

    def forward(self, x):
        return x + self.act(self.bn(self.fc(x)))


def model(inplace: bool, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), Block(8, inplace), Block(8, inplace),
                         nn.Sigmoid(), nn.Linear(8, 3)).double()


def data(seed: int = 1, n: int = 16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g, dtype=torch.float64), \
        torch.randint(0, 3, (n,), generator=g)


def retained(m: nn.Module) -> dict:
    """Leaf modules' outputs with retain_grad, by qualified name (the reference)."""
    outs = {}

    def keep(name):
        def hook(mod, inputs, out):
            out.retain_grad()
            outs.setdefault(name, []).append(out)
        return hook

    for name, mod in m.named_modules():
        if name and not list(mod.children()):
            mod.register_forward_hook(keep(name))
    return outs


def group_norm(params) -> float:
    return math.sqrt(sum(float(p.grad.norm()) ** 2 for p in params))


def split(mod):
    w = [p for n, p in mod.named_parameters(recurse=False) if n != "bias"]
    b = [p for n, p in mod.named_parameters(recurse=False) if n == "bias"]
    return w, b


def test_every_module_matches_autograd_in_float64():
    watched, ref = model(inplace=True), model(inplace=False)
    opt = torch.optim.SGD(watched.parameters(), lr=0.1, momentum=0.9)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    outs = retained(ref)
    x, y = data()
    w = backproplab.watch(watched)
    for _ in range(3):
        for m, o in ((watched, opt), (ref, ref_opt)):
            loss = nn.functional.cross_entropy(m(x), y)
            loss.backward()
            if m is ref:
                before = {n: p.detach().clone() for n, p in ref.named_parameters()}
            o.step()
        rec = w.step(loss)
        names = [layer["name"] for layer in rec["layers"]]
        assert names == ["0", "1", "2.fc", "2.bn", "2.act", "3.fc", "3.bn", "3.act", "4", "5"]
        modules = dict(ref.named_modules())
        for layer in rec["layers"]:
            out = outs[layer["name"]][-1]
            assert close(layer["delta_norm"], float(out.grad.norm())), layer["name"]
            assert close(layer["a_mean"], float(out.detach().mean())), layer["name"]
            # 16 × 8 values: the subsample is the whole output
            assert close(layer["a_std"], float(out.std(unbiased=False))), layer["name"]
            assert layer["a_hist"]["lo"] == float(out.min())
            assert layer["a_hist"]["hi"] == float(out.max())
            assert sum(layer["a_hist"]["counts"]) == out.numel()
            d = layer["delta_log_hist"]
            assert sum(d["counts"]) + d["zero"] + d["nonfinite"] == out.numel()
            assert d["zero"] == int((out.grad == 0).sum())
            weights, biases = split(modules[layer["name"]])
            if weights:
                assert close(layer["grad_w_norm"], group_norm(weights))
                names_w = [n for n, p in ref.named_parameters() if any(p is q for q in weights)]
                # ‖W‖ before the optimizer's update, as the Lab's weight_norm
                prior = math.sqrt(sum(float(before[n].norm()) ** 2 for n in names_w))
                assert close(layer["weight_norm"], prior)
                delta = math.sqrt(sum(float((dict(ref.named_parameters())[n] - before[n])
                                            .norm()) ** 2 for n in names_w))
                assert close(layer["update_ratio"], delta / prior)
            else:
                assert layer["grad_w_norm"] is None and layer["weight_norm"] is None
            if biases:
                assert close(layer["grad_b_norm"], group_norm(biases))
            if layer["kind"] == "ReLU":
                dead = float((out.detach().reshape(len(out), -1).amax(0) == 0).double().mean())
                assert close(layer["dead_frac"], dead)
            else:
                assert layer["dead_frac"] is None
            if layer["kind"] == "Tanh":
                assert close(layer["saturated_frac"],
                             float((out.abs() > math.sqrt(0.95)).double().mean()))
            elif layer["kind"] == "Sigmoid":
                assert close(layer["saturated_frac"],
                             float((out * (1 - out) < 0.0125).double().mean()))
            else:
                assert layer["saturated_frac"] is None
        assert close(rec["grad_norm"], group_norm(list(ref.parameters())))
        assert close(rec["loss"], float(loss))
        for m in (watched, ref):
            m.zero_grad()
        for v in outs.values():
            v.clear()
    w.close()
    assert "first_nonfinite" not in rec  # a step carries it only where it happened
    assert w.first_nonfinite is None


def test_in_place_relu_after_a_module_does_not_change_its_delta():
    """The tensor hook sits on the module's output before the in-place ReLU changes it:
    δ of the BatchNorm is ∂L/∂(BN output), not of the rectified tensor."""
    a, b = model(inplace=True), model(inplace=False)
    x, y = data()
    deltas = []
    for m in (a, b):
        with backproplab.watch(m) as w:
            nn.functional.cross_entropy(m(x), y).backward()
            deltas.append({layer["name"]: layer["delta_norm"] for layer in w.step()["layers"]})
    assert deltas[0] == pytest.approx(deltas[1], rel=1e-13)
    assert deltas[0]["2.bn"] != pytest.approx(deltas[0]["2.act"])


def reference_counts(values, lo: float, hi: float, bins: int) -> list[int]:
    """Uniform bins on [lo, hi] in float64, the largest value in the last bin."""
    import numpy as np

    b = np.floor((np.asarray(values, dtype=np.float64) - lo) / max(hi - lo, 1e-12) * bins)
    return np.bincount(np.clip(b, 0, bins - 1).astype(int), minlength=bins).tolist()


@pytest.mark.parametrize(("dtype", "loss_scale"), [(torch.float32, 1.0),
                                                   (torch.float32, 1e-42),
                                                   (torch.float64, 1e-318)])
def test_histograms_match_numpy_also_for_zero_and_subnormal_delta(dtype, loss_scale):
    """Outputs small enough to be histogrammed whole: a_hist over the output,
    delta_log_hist over log10 |δ| of the nonzero δ (ReLU makes many exactly 0, and a
    loss scaled by 1e-42, or 1e-318 in float64, makes the others subnormal floats),
    against NumPy in float64."""
    import numpy as np

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                      nn.Linear(16, 3)).to(dtype)
    outs = retained(m)
    x, y = torch.randn(32, 6, dtype=dtype), torch.randint(0, 3, (32,))
    with backproplab.watch(m) as w:
        (nn.functional.cross_entropy(m(x), y) * loss_scale).backward()
        layers = w.step()["layers"]
    tiny = torch.finfo(dtype).tiny
    subnormal = 0
    for layer in layers:
        out = outs[layer["name"]][-1]
        a = out.detach().double().numpy().ravel()
        h = layer["a_hist"]
        assert (h["lo"], h["hi"]) == (a.min(), a.max())
        assert h["counts"] == reference_counts(a, h["lo"], h["hi"], 24), layer["name"]
        g = out.grad.double().numpy().ravel()
        nonzero = np.abs(g[g != 0])
        subnormal += int((nonzero < tiny).sum())
        d = layer["delta_log_hist"]
        assert d["zero"] == int((g == 0).sum()) and d["nonfinite"] == 0
        logs = np.log10(nonzero)
        assert d["lo"] == pytest.approx(logs.min(), abs=1e-5)
        assert d["hi"] == pytest.approx(logs.max(), abs=1e-5)
        counts = reference_counts(logs, d["lo"], d["hi"], 24)
        # float32 logs against float64 ones: a value on a bin's edge may fall either side
        assert sum(abs(p - q) for p, q in zip(d["counts"], counts, strict=True)) <= 2
        assert sum(d["counts"]) == len(logs)
    assert (subnormal > 0) == (loss_scale < 1)


def test_a_subsample_of_a_large_output_estimates_its_moments():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 512), nn.Tanh()).double()
    x = torch.randn(256, 64, dtype=torch.float64)  # 131072 values: 1024 sampled
    with backproplab.watch(m) as w:
        m(x).sum().backward()
        layer = w.step()["layers"][1]
    out = m(x)
    assert close(layer["a_mean"], float(out.mean()))  # exact: from the whole output
    assert layer["a_std"] == pytest.approx(float(out.std()), rel=0.1)
    assert sum(layer["a_hist"]["counts"]) == 1024


def test_accumulated_microbatches_report_the_accumulated_gradient():
    watched, ref = model(True), model(False)
    outs = retained(ref)
    x, y = data(n=24)
    w = backproplab.watch(watched)
    for m in (watched, ref):
        for part in range(3):  # three backward calls, one optimizer step
            xs, ys = x[part * 8:(part + 1) * 8], y[part * 8:(part + 1) * 8]
            (nn.functional.cross_entropy(m(xs), ys) / 3).backward()
    rec = w.step()
    w.close()
    modules = dict(ref.named_modules())
    for layer in rec["layers"]:
        weights, biases = split(modules[layer["name"]])
        if weights:
            assert close(layer["grad_w_norm"], group_norm(weights))
        if biases:
            assert close(layer["grad_b_norm"], group_norm(biases))
        # the δ of all three microbatches together: √(Σ_k ‖δ_k‖²)
        parts = outs[layer["name"]]
        assert len(parts) == 3
        assert close(layer["delta_norm"], math.sqrt(sum(float(o.grad.norm()) ** 2
                                                        for o in parts)))


def test_clipping_reports_the_norm_before_and_the_factor():
    watched, ref = model(True), model(False)
    x, y = data()
    with backproplab.watch(watched) as w:
        nn.functional.cross_entropy(watched(x), y).backward()
        total = nn.utils.clip_grad_norm_(watched.parameters(), max_norm=0.05)
        rec = w.step(grad_norm=total)
    nn.functional.cross_entropy(ref(x), y).backward()
    unclipped = group_norm(list(ref.parameters()))
    assert close(rec["grad_norm"], unclipped)
    assert rec["clip_factor"] == pytest.approx(min(1.0, 0.05 / (unclipped + 1e-6)), rel=1e-9)
    assert rec["clip_factor"] < 1
    fc = next(layer for layer in rec["layers"] if layer["name"] == "0")
    assert close(fc["grad_w_norm"], float(ref[0].weight.grad.norm()) * rec["clip_factor"])


def test_amp_with_a_grad_scaler_reports_unscaled_values():
    torch.manual_seed(0)

    def make(inplace):
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(16, 32), nn.ReLU(inplace=inplace), nn.Linear(32, 4))

    watched, ref = make(True), make(False)
    x, y = torch.randn(32, 16), torch.randint(0, 4, (32,))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    opt = torch.optim.SGD(watched.parameters(), lr=0.1)
    w = backproplab.watch(watched, scaler=scaler)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = nn.functional.cross_entropy(watched(x), y)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    rec = w.step(loss)
    w.close()
    outs = retained(ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref_loss = nn.functional.cross_entropy(ref(x), y)
    ref_loss.backward()  # unscaled: the reference δ and gradients of L itself
    assert rec["loss_scale"] == 2.0**10 and rec["scaler_skipped"] is False
    for layer in rec["layers"]:
        expected = float(outs[layer["name"]][-1].grad.float().norm())
        assert layer["delta_norm"] == pytest.approx(expected, rel=2e-2), layer["name"]
    for layer, mod in zip(rec["layers"][::2], (ref[0], ref[2]), strict=True):
        assert layer["grad_w_norm"] == pytest.approx(float(mod.weight.grad.norm()), rel=2e-2)


def test_a_step_the_scaler_skips_is_not_a_blow_up():
    m = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**100)  # S·L overflows float32
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    with backproplab.watch(m, scaler=scaler) as w:
        loss = m(torch.randn(8, 4)).pow(2).mean() * 1e10
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        rec = w.step(loss)
    assert rec["scaler_skipped"] is True
    assert not all(math.isfinite(layer["delta_norm"]) for layer in rec["layers"])
    assert w.first_nonfinite is None


def test_every_k_records_one_step_in_k_and_removes_the_hooks_between():
    m = model(True)
    x, y = data()
    seen = []
    with backproplab.watch(m, every=10) as w:
        for step in range(25):
            hooked = (bool(m[0]._forward_hooks),
                      bool(m[0].weight._post_accumulate_grad_hooks))
            nn.functional.cross_entropy(m(x), y).backward()
            rec = w.step()
            m.zero_grad()
            seen.append(rec is not None)
            assert hooked == ((step % 10 == 0),) * 2
    assert [i for i, s in enumerate(seen) if s] == [0, 10, 20]
    assert not m[0]._forward_hooks and not m[0].weight._post_accumulate_grad_hooks


def test_a_recorded_step_keeps_no_gradient_alive_past_zero_grad():
    """Holding a recorded step's gradients through the unrecorded steps that follow
    made each of them allocate fresh memory for its own (1–2 ms a step on an MLP)."""
    import gc
    import weakref

    m = model(True)
    x, y = data()
    with backproplab.watch(m, every=10) as w:
        for step in range(3):
            nn.functional.cross_entropy(m(x), y).backward()
            grads = [weakref.ref(p.grad) for p in m.parameters()]
            assert (w.step() is not None) == (step == 0)
            m.zero_grad(set_to_none=True)
            gc.collect()
            assert all(g() is None for g in grads), step


def test_a_module_skipped_on_some_steps_reports_nothing_stale():
    """The hooks write into buffers kept from step to step: a module that does not run
    in a step reports None there, and its own numbers again when it runs."""

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.act, self.c = (nn.Linear(5, 8), nn.Linear(8, 8), nn.ReLU(),
                                                nn.Linear(8, 3))

        def forward(self, x, use_b):
            h = self.act(self.a(x))
            return self.c(self.b(h) if use_b else h)

    torch.manual_seed(0)
    m = Branchy().double()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    x, y = data()
    with backproplab.watch(m) as w:
        for use_b in (True, False, True, False):
            with torch.no_grad():
                expected = m.b(m.act(m.a(x)))
            nn.functional.cross_entropy(m(x, use_b), y).backward()
            opt.step()
            layers = {layer["name"]: layer for layer in w.step()["layers"]}
            opt.zero_grad()
            b = layers["b"]
            if use_b:
                assert close(b["a_mean"], float(expected.mean()))
                assert b["a_hist"]["hi"] == float(expected.max())
            else:
                assert all(b[k] is None for k in ("a_mean", "a_std", "a_hist", "delta_norm",
                                                  "delta_log_hist", "grad_w_norm",
                                                  "weight_norm", "update_ratio"))


def test_two_watchers_and_an_unwatched_model_in_one_step_keep_apart():
    """Each watcher records only its own model's modules, as a watcher alone does."""
    x, y = data()
    alone = model(True, seed=3)
    with backproplab.watch(alone) as w:
        nn.functional.cross_entropy(alone(x), y).backward()
        expected = w.step()["layers"]
    a, b, other = model(True, seed=3), model(True, seed=4), model(True, seed=5)
    with backproplab.watch(a) as wa, backproplab.watch(b) as wb:
        loss = sum(nn.functional.cross_entropy(m(x), y) for m in (a, b, other))
        loss.backward()
        got_a, got_b = wa.step()["layers"], wb.step()["layers"]
    assert [g["name"] for g in got_a] == [g["name"] for g in got_b] == \
        [e["name"] for e in expected]
    for g, e in zip(got_a, expected, strict=True):
        for key in ("delta_norm", "grad_w_norm", "a_mean", "a_std", "weight_norm"):
            assert close(g[key], e[key]) if e[key] is not None else g[key] is None, key
    assert not close(got_b[0]["a_mean"], got_a[0]["a_mean"])  # b's own numbers


def test_a_module_called_twice_reports_both_calls():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.fc(self.act(x)))

    torch.manual_seed(0)
    m = Twice().double()
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    with backproplab.watch(m) as w:
        m(x).pow(2).sum().backward()
        rec = w.step()
    ref = retained(m)
    m.zero_grad()
    m(x).pow(2).sum().backward()
    layer = next(layer for layer in rec["layers"] if layer["name"] == "act")
    both = math.sqrt(sum(float(o.grad.norm()) ** 2 for o in ref["act"]))
    assert close(layer["delta_norm"], both)
    assert [layer["name"] for layer in rec["layers"]] == ["act", "fc"]  # forward order


def test_first_nonfinite_names_the_module_that_overflowed_forward():
    class Boom(nn.Module):
        def forward(self, x):
            return x * 1e30  # float32 overflows after the next Linear

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8), Boom(), nn.Linear(8, 8), Boom(), nn.Linear(8, 1))
    with backproplab.watch(m) as w:
        m(torch.randn(4, 4)).sum().backward()
        rec = w.step()
    assert w.first_nonfinite == {"step": 0, "module": "3", "in": "forward", "what": "output"}
    assert rec["first_nonfinite"] == w.first_nonfinite
    assert not math.isfinite(rec["layers"][3]["a_mean"])


def test_first_nonfinite_in_backward_is_the_first_module_in_backward_order():
    class Sqrt(nn.Module):
        def forward(self, x):
            return torch.sqrt(x)  # ∂√x/∂x = ∞ at the dead units' zeros

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), Sqrt())
    with backproplab.watch(m) as w:
        m(torch.randn(16, 4)).sum().backward()
        rec = w.step()
    assert all(math.isfinite(layer["a_mean"]) for layer in rec["layers"])
    assert w.first_nonfinite == {"step": 0, "module": "3", "in": "backward", "what": "delta"}


def test_a_bad_loss_on_a_step_that_is_not_recorded_is_found():
    m = nn.Sequential(nn.Linear(2, 1))
    with backproplab.watch(m, every=5) as w:
        for step in range(4):
            loss = m(torch.ones(1, 2)).sum() * (math.inf if step == 2 else 1.0)
            loss.backward()
            w.step(loss)
            m.zero_grad()
    assert w.first_nonfinite == {"step": 2, "module": None, "in": "forward", "what": "loss"}


def test_the_first_of_several_bad_losses_is_named_at_the_next_recorded_step():
    m = nn.Sequential(nn.Linear(2, 1))
    bad = {1: math.nan, 2: math.inf}
    with backproplab.watch(m, every=4) as w:
        for step in range(5):
            loss = m(torch.ones(1, 2)).sum() * bad.get(step, 1.0)
            loss.backward()
            rec = w.step(loss)
            m.zero_grad()
        # read with step 4's record, before close()
        assert rec["step"] == 4
        assert w.first_nonfinite == {"step": 1, "module": None, "in": "forward",
                                     "what": "loss"}


def test_a_bad_value_in_a_per_example_loss_not_recorded_is_found():
    """w.step(loss) with the unreduced per-example losses on steps not recorded: a NaN in
    one example names its step, at the next recorded step and at close()."""
    m = nn.Sequential(nn.Linear(2, 1))
    for last in (3, 2):  # step 3 is recorded (every=3); a run that ends at step 2 is not
        with backproplab.watch(m, every=3) as w:
            for step in range(last + 1):
                per_example = m(torch.ones(4, 2)).sum(1)
                if step == 2:
                    per_example = per_example * torch.tensor([1.0, math.nan, 1.0, 1.0])
                per_example.mean().backward()
                w.step(per_example.mean() if step % 3 == 0 else per_example)
                m.zero_grad()
            if last == 3:
                assert w.first_nonfinite["step"] == 2
        assert w.first_nonfinite == {"step": 2, "module": None, "in": "forward",
                                     "what": "loss"}


def test_out_file_is_json_lines_that_read_back_as_the_record(tmp_path):
    m = model(True)
    x, y = data()
    path = tmp_path / "run.jsonl"
    with backproplab.watch(m, out=path, name="resnet-ish", every=2) as w:
        for _ in range(5):
            nn.functional.cross_entropy(m(x), y).backward()
            w.step()
            m.zero_grad()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 1 + 3 + 1  # head, steps 0, 2, 4, end
    record = parse_record(path.read_bytes())
    assert [s["step"] for s in record["steps"]] == [0, 2, 4]
    assert record["config"]["source"] == "watched" and record["theory"] is None
    assert record["config"]["name"] == "resnet-ish"
    assert [mod["name"] for mod in record["config"]["modules"]] == \
        [layer["name"] for layer in record["steps"][0]["layers"]]
    assert record["config"]["parameters"] == sum(p.numel() for p in m.parameters())
    assert record["steps"] == w.record()["steps"]


@pytest.mark.slow
def test_a_model_compiled_after_watch_reports_what_eager_reports():
    """watch(m), then torch.compile(m): dynamo runs the hooks (breaking the graph at
    them on recorded steps, a hook-free graph in between); the numbers equal eager's."""
    import shutil

    if not shutil.which("gcc") and not shutil.which("cc"):
        pytest.skip("torch.compile on the CPU needs a C compiler")
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 8), nn.Tanh(),
                         nn.Linear(8, 2))
    x = torch.randn(8, 4)
    records = []
    for compiled in (False, True):
        m = copy.deepcopy(base)
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        w = backproplab.watch(m, every=2)
        run = torch.compile(m) if compiled else m
        steps = []
        for _ in range(5):
            loss = run(x).pow(2).mean()
            loss.backward()
            opt.step()
            rec = w.step(loss)
            opt.zero_grad()
            if rec:
                steps.append(rec)
        w.close()
        records.append(steps)
    keys = ("delta_norm", "grad_w_norm", "a_mean", "a_std", "dead_frac", "update_ratio")
    for eager, comp in zip(*records, strict=True):
        for a, b in zip(eager["layers"], comp["layers"], strict=True):
            for k in keys:
                assert (a[k] is None) == (b[k] is None)
                if a[k] is not None:
                    assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-7), (a["name"], k)


def test_compiled_models_are_refused_with_what_to_do():
    m = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="_orig_mod"):
        backproplab.watch(torch.compile(m))
    inner = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    inner[0].compile()
    with pytest.raises(ValueError, match="module '0' is compiled"):
        backproplab.watch(inner)


def test_a_step_without_a_forward_says_why():
    m = nn.Sequential(nn.Linear(2, 1))
    w = backproplab.watch(m)
    with pytest.raises(RuntimeError, match="once per optimizer step"):
        w.step()
    w.close()


def test_bad_arguments_are_clear_errors():
    m = nn.Sequential(nn.Linear(2, 1))
    with pytest.raises(ValueError, match="every"):
        backproplab.watch(m, every=0)
    with pytest.raises(ValueError, match="no module named 'nope'"):
        backproplab.watch(m, modules=["nope"])
    with pytest.raises(TypeError, match="nn.Module"):
        backproplab.watch(object())


def test_update_ratio_of_a_large_weight_over_its_strided_sample():
    """A weight of more than 1024 entries: ‖ΔW‖/‖W‖ over every 3rd entry (the stride
    n // 1024 = 3, coprime with the 64 columns, so every column is visited), W taken
    before the update; the same after the optimizer replaces the weight's storage."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 48).double(), nn.Tanh(), nn.Linear(48, 2).double())
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    w = backproplab.watch(m)
    x, y = torch.randn(16, 64, dtype=torch.float64), torch.randint(0, 2, (16,))
    for replace in (False, True):
        before = m[0].weight.detach().clone()
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
        if replace:  # an optimizer that rebinds .data instead of updating in place
            m[0].weight.data = m[0].weight.data.clone()
        rec = w.step()
        opt.zero_grad()
        idx = torch.arange(1024) * 3
        assert len({int(i) % 64 for i in idx}) == 64
        after = m[0].weight.detach().reshape(-1)[idx]
        expected = float((after - before.reshape(-1)[idx]).norm() / before.reshape(-1)[idx].norm())
        first = rec["layers"][0]
        assert close(first["update_ratio"], expected)
        assert close(first["weight_norm"], float(before.norm()))
    w.close()
