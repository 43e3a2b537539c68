"""The torch engine's own backward pass against torch.autograd in float64, the
probes' two ways of gathering (inline on the host, batched as on a GPU) against
each other, and the saturation rule against φ' itself."""

import math

import numpy as np
import pytest

from backproplab.engines import iter_steps, make_engine, probes
from backproplab.engines.probes import ProbeMode
from backproplab.model import ACTIVATION_NAMES, ACTIVATIONS, RecordSpec, RunSpec, batch
from backproplab.xp import NUMPY

torch = pytest.importorskip("torch")


def autograd_loss(spec, params, x, labels, targets):
    """The network written plainly for torch.autograd (the reference)."""
    F = torch.nn.functional
    act = {"linear": lambda v: v, "relu": F.relu, "leaky_relu": lambda v: F.leaky_relu(v, 0.01),
           "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gelu": F.gelu, "silu": F.silu,
           "softplus": F.softplus, "elu": F.elu, "selu": F.selu}[spec.activation]
    a = x
    for index in range(spec.depth):
        z = a @ params[2 * index].T + params[2 * index + 1]
        if spec.norm == "layernorm":
            c = z - z.mean(-1, keepdim=True)
            z = c / torch.sqrt(c.square().mean(-1, keepdim=True) + 1e-5)
        y = act(z)
        a = a + spec.alpha * y if spec.is_residual_layer(index) else y
    out = a @ params[-2].T + params[-1]
    if spec.loss == "mse":
        return torch.mean((out - targets) ** 2)
    return F.cross_entropy(out, torch.as_tensor(labels))


CASES = [(act, norm, residual, loss)
         for k, act in enumerate(ACTIVATION_NAMES)
         for norm, residual, loss in [("none", False, "mse"), ("layernorm", True, "cross_entropy"),
                                      ("none" if k % 2 else "layernorm", k % 2 == 0,
                                       "mse" if k % 2 else "cross_entropy")]]


@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_own_backward_matches_autograd_float64(case):
    act, norm, residual, loss = case
    spec = RunSpec(engine="torch", dtype="float64", depth=4, width=7, activation=act, norm=norm,
                   residual=residual, residual_scale=0.6, loss=loss, dataset="spirals",
                   batch_size=6, sigma_b=0.3, seed=3)
    engine = make_engine(spec)
    x, labels, targets = batch(spec, 0)
    p = engine.forward_backward(engine.to_device(x), labels, engine.to_device(targets), None)
    params = [q.clone().requires_grad_(True) for q in engine.params]
    ref = autograd_loss(spec, params, engine.to_device(x), labels, engine.to_device(targets))
    expected = torch.autograd.grad(ref, params)
    assert float(p.loss) == pytest.approx(float(ref.detach()), rel=1e-13)
    for mine, theirs in zip(p.grads, expected, strict=True):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-11, atol=1e-14)


def test_checkpointed_backward_is_the_same_backward():
    spec = RunSpec(engine="torch", dtype="float64", depth=9, width=6, activation="gelu",
                   residual=True, batch_size=5, steps=3, record=RecordSpec(every=1))
    plain = list(iter_steps(spec))
    checkpointed = list(iter_steps(spec.replace(checkpoint="sqrt")))
    for a, b in zip(plain, checkpointed, strict=True):
        for la, lb in zip(a["layers"], b["layers"], strict=True):
            assert la["delta_norm"] == lb["delta_norm"]
            assert la["grad_w_norm"] == lb["grad_w_norm"]
            assert la["a_hist"] == lb["a_hist"]


def records(spec, **engine_attrs):
    engine = make_engine(spec)
    for key, value in engine_attrs.items():
        setattr(engine, key, value)
    return list(iter_steps(spec, engine=engine))


def assert_same_records(a, b, rtol):
    for ra, rb in zip(a, b, strict=True):
        for la, lb in zip(ra["layers"], rb["layers"], strict=True):
            for key in probes.SCALAR_KEYS:
                x, y = la[key], lb[key]
                assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=rtol), \
                    (ra["step"], la["index"], key)
            for hist in ("a_hist", "delta_log_hist"):
                assert la[hist]["counts"] == lb[hist]["counts"], (la["index"], hist)
            np.testing.assert_allclose(la["delta_sample"], lb["delta_sample"], rtol=rtol)


SPECS = [
    RunSpec(engine="torch", dtype="float64", depth=6, width=24, activation="relu",
            init="he_normal", lr=0.5, steps=3, batch_size=40, microbatches=2, seed=1,
            record=RecordSpec(every=1)),
    RunSpec(engine="torch", dtype="float32", depth=8, width=16, activation="tanh",
            norm="layernorm", optimizer="adam", steps=2, batch_size=12, seed=2,
            record=RecordSpec(every=1)),
    RunSpec(engine="torch", dtype="float32", activation="tanh", depth=300, width=32,
            init="normal", sigma_w=20.0, steps=2, batch_size=8, record=RecordSpec(every=1)),
]


@pytest.mark.parametrize("spec", SPECS, ids=["relu-micro", "layernorm-adam", "overflow"])
def test_batched_gathering_matches_inline(spec):
    """The GPU way (keep every δ, reduce all layers at once, no host sync) run on the
    CPU against the CPU way (reduce each δ in cache), on the same network."""
    inline = records(spec)
    batched = records(spec, probe_mode=ProbeMode.DEVICE)
    assert_same_records(inline, batched, rtol=1e-5 if spec.dtype == "float32" else 1e-12)


@pytest.mark.parametrize("spec", SPECS, ids=["relu-micro", "layernorm-adam", "overflow"])
def test_device_reduction_matches_host_reduction(spec):
    """probes.compute in torch ops (as on a GPU) against the NumPy one, same data."""
    engine = make_engine(spec)
    with np.errstate(all="ignore"):  # the overflow case overflows, as the runner allows
        result = engine.train_step(0, probe=True)
    args = (spec.activation, spec.norm, 16, 5, spec.seed)
    host = probes.summarize(engine.xp, result.probe, result.norms, *args, host=True)
    device = probes.summarize(engine.xp, result.probe, result.norms, *args, host=False)
    for key in probes.SCALAR_KEYS:
        # float32 means of O(1) values near 0: summation order shows at ~1e-7 absolute
        np.testing.assert_allclose(getattr(host, key), getattr(device, key), rtol=1e-5,
                                   atol=1e-6, equal_nan=True)
    for key in ("a_counts", "d_counts", "d_zero", "d_nonfinite"):
        np.testing.assert_array_equal(getattr(host, key), getattr(device, key))
    for key in ("a_lo", "a_hi", "d_lo", "d_hi"):
        np.testing.assert_allclose(getattr(host, key), getattr(device, key), rtol=1e-6,
                                   equal_nan=True)
    np.testing.assert_allclose(np.concatenate(host.delta_sample),
                               np.concatenate(device.delta_sample), rtol=1e-6)


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_saturation_rule_is_the_derivative_threshold(activation):
    """u ≤ c_lo or u ≥ c_hi  ⇔  φ'(u) < 5% of max φ' (away from the two edges)."""
    rng = np.random.default_rng(0)
    c_lo, c_hi = probes.saturation_rule(activation)
    u = np.concatenate([rng.normal(0, 4, 20000), np.linspace(-30, 30, 6001), [0.0, -0.0]])
    edges = [c for c in (c_lo, c_hi) if math.isfinite(c)]
    keep = np.all([np.abs(u - c) > 1e-9 for c in edges], axis=0) if edges else slice(None)
    rule = (u <= c_lo) | (u >= c_hi)
    record = ACTIVATIONS[activation]
    truth = record.dphi(u, NUMPY) < probes.SATURATION * record.max_derivative
    np.testing.assert_array_equal(rule[keep], truth[keep])
    for c in edges:  # and the edges are where φ' crosses the threshold
        limit = probes.SATURATION * record.max_derivative
        assert record.dphi(np.array([c]), NUMPY)[0] == pytest.approx(limit, abs=1e-6) \
            or activation in ("relu", "leaky_relu")


def test_saturated_fraction_counts_units_by_hand():
    spec = RunSpec(dtype="float64", depth=3, width=10, activation="tanh", init="normal",
                   sigma_w=3.0, steps=0, batch_size=8, dataset="xor")
    engine = make_engine(spec)
    result = engine.train_step(0, probe=True, update=False)
    record = next(iter_steps(spec))
    for index in range(spec.depth):
        z = result.zs[index]
        expected = np.mean(1 - np.tanh(z) ** 2 < 0.05)
        assert record["layers"][index]["saturated_frac"] == pytest.approx(expected, abs=1e-15)


def test_saturated_fraction_with_layernorm_is_taken_on_the_normalized_input():
    spec = RunSpec(dtype="float64", depth=3, width=10, activation="tanh", init="normal",
                   sigma_w=3.0, norm="layernorm", steps=0, batch_size=8, dataset="xor")
    engine = make_engine(spec)
    result = engine.train_step(0, probe=True, update=False)
    record = next(iter_steps(spec))
    for index in range(spec.depth):
        z = result.zs[index]
        u = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-5)
        expected = np.mean(1 - np.tanh(u) ** 2 < 0.05)
        assert record["layers"][index]["saturated_frac"] == pytest.approx(expected, abs=1e-15)


def test_bfloat16_probes_follow_float32():
    """bfloat16 goes through the generic (torch) collector: same network, same
    numbers to bfloat16's ~3 significant digits."""
    spec = RunSpec(engine="torch", depth=5, width=16, steps=0, batch_size=8, dataset="xor",
                   activation="tanh")
    low = next(iter_steps(spec.replace(dtype="bfloat16")))["layers"]
    high = next(iter_steps(spec.replace(dtype="float32")))["layers"]
    for a, b in zip(low, high, strict=True):
        for key in ("delta_norm", "grad_w_norm", "weight_norm"):
            assert a[key] == pytest.approx(b[key], rel=0.05), (a["index"], key)


def alive_cases():
    rng = np.random.default_rng(7)
    g = rng.normal(size=(64, 40)).astype(np.float32)
    yield "dense", g
    relu = g * (rng.random(g.shape) < 0.5)  # half the entries zero, units alive
    relu[:, [3, 17]] = 0.0  # two dead units
    relu[:probes.HEAD_ROWS + 2, 20] = 0.0  # alive only past the first rows
    relu[30, 20] = 0.5
    yield "relu", relu
    late = np.zeros_like(g)
    late[50, 5] = 1e-30  # alive only through an example far past the first rows
    late[0, :] = 0.0
    late[:, 9] = np.nan  # NaN counts as alive, as in any()
    late[63, 11] = -0.0  # negative zero is zero
    yield "late", late
    mostly_dead = np.zeros_like(g)
    mostly_dead[40, ::7] = 2.0  # most units dead: the one-pass branch
    yield "mostly-dead", mostly_dead
    yield "few-rows", relu[:3]
    yield "one-row", relu[:1]
    yield "no-rows", relu[:0]


@pytest.mark.parametrize("case", list(alive_cases()), ids=lambda c: c[0])
def test_host_alive_is_any(case):
    _, g = case
    np.testing.assert_array_equal(probes.host_alive(g), g.any(0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_host_histograms_match_numpy_histogram(dtype):
    """Counts per layer against np.histogram over [min, max] (its last bin is closed,
    as ours is)."""
    rng = np.random.default_rng(3)
    values = (rng.standard_normal((6, 999)) * np.array([1, 1e-3, 50, 1, 7, 2])[:, None]
              + np.array([0, 5, -3, 1e3, 0, 0])[:, None]).astype(dtype)
    values[5] = 0.25  # a constant layer: everything in one bin
    lo, hi, counts = probes.host_histograms(values.copy(), 12)
    for layer in range(values.shape[0]):
        if layer == 5:
            assert counts[layer].sum() == 999 and counts[layer, 0] == 999
            continue
        expected, _ = np.histogram(values[layer], bins=12, range=(lo[layer], hi[layer]))
        # a value within rounding of an inner edge may land on either side of it
        assert np.abs(counts[layer] - expected).sum() <= 2, layer
        assert counts[layer].sum() == 999 and counts[layer, -1] >= 1  # the max is counted
    assert probes.host_histograms(np.array([[1.0, np.inf]]), 4) is None
    assert probes.host_histograms(np.array([[1.0, np.nan]]), 4) is None


def test_summary_statistics_against_float64_by_hand():
    """Moments, saturation, histograms and δ samples of a made-up subsample,
    against plain float64 NumPy."""
    rng = np.random.default_rng(11)
    L, n, W, out = 4, 5, 30, 3
    Z = (rng.standard_normal((L, n, W)) * 2).astype(np.float32)
    A = np.tanh(Z)
    D = (rng.standard_normal((L, n, W)) * 10.0 ** rng.integers(-8, 3, (L, 1, 1))).astype(
        np.float32)
    D[1, 2, 4] = 0.0  # a zero δ: out of the log histogram, counted apart
    z_out = rng.standard_normal((n, out)).astype(np.float32)
    d_out = rng.standard_normal((n, out)).astype(np.float32)
    data = probes.ProbeData(Z, A, D, z_out, d_out, np.arange(L + 1, dtype=float) + 1.0,
                            np.full(L + 1, 2.0))
    norms = {k: np.ones(L + 1) for k in ("grad_w", "grad_b", "weight", "update")}
    stats = probes.summarize(NUMPY, data, norms, "tanh", "none", 10, 4, 0)
    c = probes.saturation_rule("tanh")[1]
    for layer in range(L):
        z, a, d = (x[layer].astype(np.float64) for x in (Z, A, D))
        assert stats.z_mean[layer] == pytest.approx(z.mean(), abs=1e-6)
        assert stats.z_std[layer] == pytest.approx(z.std(), rel=1e-5)
        assert stats.a_std[layer] == pytest.approx(a.std(), rel=1e-5)
        assert stats.saturated_frac[layer] == np.mean(np.abs(z) >= c)
        assert stats.dead_frac[layer] == pytest.approx(1 - 2.0 / W)
        expected, _ = np.histogram(a, bins=10, range=(a.min(), a.max()))
        assert np.abs(stats.a_counts[layer] - expected).sum() <= 2
        d_counts, d_lo, d_hi = stats.d_counts, stats.d_lo, stats.d_hi
        zeros, nonfinite = stats.d_zero, stats.d_nonfinite
        logs = np.log10(np.abs(d[d != 0]))
        assert d_lo[layer] == pytest.approx(logs.min(), abs=1e-5)
        assert d_hi[layer] == pytest.approx(logs.max(), abs=1e-5)
        assert d_counts[layer].sum() == logs.size
        assert zeros[layer] == (1 if layer == 1 else 0) and nonfinite[layer] == 0
    units = probes.sampled_units(0, W, 4)
    for layer in range(L):
        np.testing.assert_array_equal(stats.delta_sample[layer], D[layer, 0, units])
    assert stats.delta_sample[L] == pytest.approx(list(d_out[0, :3]))


def test_microbatches_smaller_than_the_subsample_still_fill_it():
    """Parts of 2 examples: the subsample is still the first subsample_size examples
    of the batch, the same values as without microbatches."""
    spec = RunSpec(dtype="float64", depth=3, width=300, activation="tanh", steps=0,
                   batch_size=8, microbatches=4, record=RecordSpec(hist_bins=6))
    n_sub = probes.subsample_size(8, 300)
    assert n_sub > 2
    split = next(iter_steps(spec))["layers"]
    whole = next(iter_steps(spec.replace(microbatches=1)))["layers"]
    for a, b in zip(split, whole, strict=True):
        width = 300 if a["kind"] == "hidden" else spec.out_features
        assert sum(a["a_hist"]["counts"]) == n_sub * width
        for key in ("z_mean", "z_std", "a_std", "delta_norm", "grad_w_norm"):
            assert a[key] == pytest.approx(b[key], rel=1e-9), (a["index"], key)


def test_tf32_is_cuda_only_and_holds_the_process_flag_under_one_lock():
    """TF32 is a process-wide torch switch: CUDA work sets it under one lock, and
    restores it; on a machine without a GPU a tf32 run is refused by name."""
    import threading

    from backproplab.engines.torch_engine import cuda_available
    from backproplab.xp import precision

    spec = RunSpec(engine="torch", dtype="tf32", device="auto", depth=2, width=4,
                   batch_size=4, dataset="xor", steps=1)
    if cuda_available():
        engine = make_engine(spec)
        assert engine.tf32 and engine.dtype == torch.float32
    else:
        with pytest.raises(ValueError, match="dtype 'tf32' needs a CUDA device"):
            make_engine(spec)
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_tf32
    held, free = [], threading.Event()

    def other_thread():
        held.append(precision.lock().acquire(blocking=False))
        free.set()

    with precision.cuda_matmul_precision(torch, not before):
        assert matmul.allow_tf32 is (not before)
        threading.Thread(target=other_thread).start()
        free.wait(5)
    assert held == [False]  # another run's CUDA work waits for the lock
    assert matmul.allow_tf32 is before


def test_batched_probes_launch_no_kernel_per_layer():
    """The GPU way (batched gathering, device reduction) counted in aten operations,
    each a kernel launch on a GPU: what probing adds to a step, and the reduction
    of a record, are the same at depth 4 and depth 40 (nothing per layer), and the
    reduction stays under 120 operations."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += 1
            return func(*args, **(kwargs or {}))

    added, reduction = [], []
    for depth in (4, 40):
        spec = RunSpec(engine="torch", depth=depth, width=16, batch_size=12, steps=10,
                       activation="tanh", record=RecordSpec(hist_bins=8, delta_samples=3))
        engine = make_engine(spec)
        engine.probe_mode = ProbeMode.DEVICE
        engine.train_step(0, probe=True)  # warm up
        with Count() as plain:
            engine.train_step(1, probe=False)
        with Count() as probed:
            result = engine.train_step(2, probe=True)
        with Count() as summary:
            probes.summarize(engine.xp, result.probe, result.norms, "tanh", "none", 8, 3, 0,
                             host=False)
        added.append(probed.n - plain.n)
        reduction.append(summary.n)
    assert added[0] == added[1], added
    assert reduction[0] == reduction[1] and reduction[0] < 120, reduction


def test_batched_gathering_slices_layer_by_layer_when_a_stack_would_be_large(monkeypatch):
    spec = SPECS[0]
    whole = records(spec, probe_mode=ProbeMode.DEVICE)
    monkeypatch.setattr(probes.collect, "STACK_BYTES", 0)
    sliced = records(spec, probe_mode=ProbeMode.DEVICE)
    assert_same_records(whole, sliced, rtol=0)


def test_masked_histograms_by_hand_on_both_array_libraries():
    """The general histogram (a device's, and the host's when a value is not finite):
    non-finite values are left out, a layer without a finite value is empty, a span
    beyond the float range counts what it can, the largest value is in the last bin."""
    from backproplab.xp import TorchXP

    rows = np.array([[-3e38, 3e38, 0.0, 1.0],
                     [np.nan, np.inf, -np.inf, 2.0],
                     [np.nan, np.nan, np.inf, -np.inf],
                     [0.0, 1.0, 2.0, 3.0]], dtype=np.float32)
    expected = [[3, 0, 0], [1, 0, 0], [0, 0, 0], [1, 1, 2]]
    with np.errstate(all="ignore"):
        lo, hi, counts = probes.histograms(NUMPY, rows, 3)
    t_lo, t_hi, t_counts = probes.histograms(TorchXP(torch), torch.from_numpy(rows), 3)
    assert counts.tolist() == expected and t_counts.tolist() == expected
    np.testing.assert_array_equal(lo, np.float32([-3e38, 2.0, 0.0, 0.0]))
    np.testing.assert_array_equal(hi, np.float32([3e38, 2.0, 0.0, 3.0]))
    np.testing.assert_array_equal(t_lo.numpy(), lo)
    np.testing.assert_array_equal(t_hi.numpy(), hi)
