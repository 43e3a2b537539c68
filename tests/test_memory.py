"""The memory measurement: saved bytes over depth per checkpointing strategy (slopes
against Chen et al. 2016: 1 without checkpointing, ½ with √L segments), the
recomputation (one forward pass), microbatches (the full-batch gradient)."""

import numpy as np
import pytest

from backproplab.engines import make_engine, memory
from backproplab.model.spec import RunSpec
from backproplab.tape.optim import split_batch

pytest.importorskip("torch")
pytest.importorskip("jax")
METERS = ["numpy", "torch", "jax"]

DEPTHS = [16, 32, 64, 128, 256, 512]
BASE = RunSpec(width=32, batch_size=16, dtype="float64", input_dim=8)


@pytest.fixture(scope="module")
def curves():
    return {"numpy": memory._curves(BASE, DEPTHS, 4, memory.tape_pass),
            "torch": memory._curves(BASE, DEPTHS, 4, memory.torch_pass),
            "jax": memory._curves(BASE, DEPTHS, 4, memory.jax_pass)}


@pytest.mark.parametrize("meter", METERS)
def test_saved_bytes_grow_as_depth_without_and_root_depth_with_checkpointing(curves, meter):
    c = curves[meter]
    assert c["none"]["slope"] == pytest.approx(1.0, abs=0.1)
    assert c["sqrt"]["slope"] == pytest.approx(0.5, abs=0.1)
    # the slope is the least-squares fit of the measured points themselves
    fitted = np.polyfit(np.log(DEPTHS), np.log(c["sqrt"]["peak_bytes"]), 1)[0]
    assert c["sqrt"]["slope"] == pytest.approx(fitted, rel=1e-12)
    # no checkpointing keeps at least one batch×width activation per layer
    layer_bytes = BASE.batch_size * BASE.width * 8
    assert all(p >= d * layer_bytes for p, d in zip(c["none"]["peak_bytes"], DEPTHS,
                                                    strict=True))
    # every k = 4: L/4 segment inputs + one segment, below none, above √L at depth 512
    assert c["sqrt"]["peak_bytes"][-1] < c["every"]["peak_bytes"][-1] < \
        c["none"]["peak_bytes"][-1]


@pytest.mark.parametrize("meter", METERS)
def test_root_depth_segments_recompute_about_one_forward_pass(curves, meter):
    c = curves[meter]
    assert c["none"]["extra_forward"] == [0.0] * len(DEPTHS)
    for extra in c["sqrt"]["extra_forward"] + c["every"]["extra_forward"]:
        assert extra == pytest.approx(1.0, abs=0.25)


def test_tape_meter_counts_what_the_tape_saves_by_hand():
    # tanh(dense): each layer saves its dense and tanh outputs (batch × width each);
    # the output layer, the loss and its residual on top
    spec = BASE.replace(depth=10)
    p, _ = memory.tape_pass(spec)
    layer_bytes = spec.batch_size * spec.width * 8
    out_bytes = spec.batch_size * spec.out_features * 8
    assert 20 * layer_bytes + out_bytes <= p.peak_bytes <= 20 * layer_bytes + 4 * out_bytes


def test_torch_hooks_count_one_saved_activation_per_tanh_layer():
    # autograd saves each addmm's input and each tanh's output (the same storage, counted
    # once): the data x, the 10 tanh outputs, and the loss's residual (out − targets)
    spec = BASE.replace(depth=10)
    p, _ = memory.torch_pass(spec)
    rows, itemsize = spec.batch_size, 8
    expected = rows * itemsize * (spec.input_dim + 10 * spec.width + spec.out_features)
    assert p.peak_bytes == expected


def test_jax_meter_counts_what_jax_vjp_keeps_by_hand():
    # tanh(dense) under jax.vjp: each layer keeps its output a(l) (the next product's
    # input) and φ′ = 1 − a(l)², which JAX's linearization computes in the forward
    # pass; the data x, and the loss's residual on top; the weights are not counted
    spec = BASE.replace(depth=10)
    p, grads = memory.jax_pass(spec)
    layer_bytes = spec.batch_size * spec.width * 8
    data_bytes = spec.batch_size * spec.input_dim * 8
    out_bytes = spec.batch_size * spec.out_features * 8
    assert 20 * layer_bytes + data_bytes <= p.peak_bytes <= \
        20 * layer_bytes + data_bytes + 4 * out_bytes
    # the gradient of that pass is torch autograd's
    _, reference = memory.torch_pass(spec)
    assert memory.max_relative_difference(grads, reference) < 1e-12
    # a checkpointed pass keeps the segment boundaries and one segment's residuals
    ckpt, ckpt_grads = memory.jax_pass(spec.replace(checkpoint="every", checkpoint_every=5))
    assert ckpt.peak_bytes < p.peak_bytes
    assert ckpt.peak_bytes >= 10 * layer_bytes  # one 5-layer segment, recomputed
    assert memory.max_relative_difference(ckpt_grads, reference) < 1e-12


@pytest.mark.parametrize("k", [2, 4])
def test_jax_microbatches_give_the_full_batch_gradient_with_less_memory(k):
    spec = BASE.replace(depth=6)
    full, reference = memory.jax_pass(spec)
    part, grads = memory.jax_pass(spec, k)
    assert memory.max_relative_difference(grads, reference) < 1e-12
    assert part.peak_bytes < full.peak_bytes


@pytest.mark.parametrize("strategy", ["sqrt", "every"])
@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_checkpointed_engines_give_the_plain_gradient(engine, strategy):
    spec = BASE.replace(engine=engine, depth=13, checkpoint_every=3)
    plain, ckpt = make_engine(spec), make_engine(spec.replace(checkpoint=strategy))
    x, labels, targets = plain.make_batch(0)
    a = plain.forward_backward(plain.to_device(x), labels, plain.to_device(targets), None)
    b = ckpt.forward_backward(ckpt.to_device(x), labels, ckpt.to_device(targets), None)
    for ga, gb in zip(a.grads, b.grads, strict=True):
        np.testing.assert_allclose(plain.xp.host(gb), plain.xp.host(ga), rtol=1e-13,
                                   atol=1e-16)


def test_every_k_segments():
    spec = RunSpec(depth=10, checkpoint="every", checkpoint_every=4)
    assert spec.segment_bounds == [(0, 4), (4, 8), (8, 10)] and spec.segments == 3
    assert RunSpec(depth=16, checkpoint="sqrt").segment_bounds == [(0, 4), (4, 8), (8, 12),
                                                                   (12, 16)]
    assert RunSpec(depth=5).segment_bounds == [(0, 5)]


@pytest.mark.parametrize("k", [2, 3, 5, 16])
@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_microbatches_give_the_full_batch_gradient(engine, k):
    spec = BASE.replace(engine=engine, depth=6, loss="cross_entropy", dataset="spirals")
    e = make_engine(spec)
    x, labels, targets = e.make_batch(0)
    full = e.forward_backward(e.to_device(x), labels, e.to_device(targets), None).grads
    acc = None
    for xb, lb, tb in split_batch((x, labels, targets), k):
        part = e.forward_backward(e.to_device(xb), lb, e.to_device(tb), None).grads
        part = [g * (len(xb) / len(x)) for g in part]
        acc = part if acc is None else [a + g for a, g in zip(acc, part, strict=True)]
    for a, f in zip(acc, full, strict=True):
        np.testing.assert_allclose(e.xp.host(a), e.xp.host(f), rtol=1e-12, atol=1e-15)


def test_report_microbatch_rows():
    spec = BASE.replace(depth=8, microbatches=3)
    report = memory.memory_report(spec, [8, 16])
    rows = {r["k"]: r for r in report["microbatches"]}
    assert sorted(rows) == [1, 2, 3, 4, 8, 16]
    assert report["engines"] == METERS and report["jax_meter"] == memory.JAX_METER
    for row in rows.values():
        assert row["max_rel_diff"] < 1e-12 and row["torch_max_rel_diff"] < 1e-12
        assert row["jax_max_rel_diff"] < 1e-12
    # one part's activations alive at a time: k parts of B/k rows need about 1/k
    for k in (2, 4, 8):
        assert rows[k]["peak_bytes"] == pytest.approx(rows[1]["peak_bytes"] / k, rel=0.05)
        assert rows[k]["torch_peak_bytes"] == pytest.approx(rows[1]["torch_peak_bytes"] / k,
                                                            rel=0.05)
        assert rows[k]["jax_peak_bytes"] == pytest.approx(rows[1]["jax_peak_bytes"] / k,
                                                          rel=0.05)
    assert report["current"]["peak_bytes"] == rows[1]["peak_bytes"]
    assert report["current"]["jax_peak_bytes"] == rows[1]["jax_peak_bytes"]


def test_affordable_depths_stop_at_the_budget():
    spec = RunSpec(width=128, batch_size=64)
    grid = memory.depth_grid()
    assert grid[0] == 8 and grid[-1] == 1000 and len(grid) == 10
    for meters in (2, 3):  # 3 strategies on each meter
        kept = memory.affordable_depths(spec, grid, max_work=1e10, max_bytes=1 << 30,
                                        engines=meters)
        total = sum(3 * meters * memory.pass_work(spec, d) for d in kept)
        assert total <= 1e10 < total + 3 * meters * memory.pass_work(spec, grid[len(kept)])
    assert memory.affordable_depths(spec, grid, 1e30, 1e30) == grid


def test_a_cancelled_report_stops_before_its_next_pass():
    import threading

    from backproplab.engines.base import Cancelled

    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        memory.memory_report(BASE.replace(depth=8), [8, 16], cancel=stop)
