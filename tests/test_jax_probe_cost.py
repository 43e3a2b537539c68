"""What the probes add to the JAX engine's compiled step, counted in XLA's optimized
program (load-independent, unlike a timing): a bounded number of operations
whatever the depth, nothing per layer inside the scanned loops but the rows and δ
they hand out; and both ways of taking δ out of the backward pass (stacked, or
reduced per layer inside it) give the tape engine's probes."""

import re

import pytest

from backproplab.engines import iter_steps, jax_probes, make_engine
from backproplab.engines.jax_engine import compiled_step
from backproplab.model import RecordSpec, RunSpec
from test_engines_agree import assert_agree

# instructions that launch nothing on XLA's CPU runtime (views, tuples, inputs)
FREE = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast"}
INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?\S+ = (?:\(.*?\)|\S+) ([\w-]+)\(")


def launched(hlo: str) -> dict[str, int]:
    """Operations that run (each fusion, copy, dot, loop, ...) per computation of an
    optimized HLO module: "ENTRY" and each while loop's body by name."""
    bodies = set(re.findall(r"body=%?([\w.\-]+)", hlo))
    counts = {}
    for block in hlo.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        head = lines[0].split()
        name = "ENTRY" if head[0] == "ENTRY" else head[0].lstrip("%")
        if name != "ENTRY" and name not in bodies:
            continue
        counts[name] = sum(1 for line in lines[1:]
                           if (m := INSTRUCTION.match(line)) and m.group(1) not in FREE)
    return counts


def optimized(spec: RunSpec, probe: bool) -> dict[str, int]:
    engine = make_engine(spec)
    fn = engine.step_function(probe, False, True)
    with engine.scope():
        args, _ = engine.inputs(0, True)
        return launched(fn.lower(engine.state, *args).compile().as_text())


def bench_spec(depth: int) -> RunSpec:  # as benchmarks/compiled.py: float32, tanh, SGD
    return RunSpec(engine="jax", dtype="float32", depth=depth, width=64, batch_size=64,
                   input_dim=64, activation="tanh", steps=10,
                   record=RecordSpec(hist_bins=24, delta_samples=8))


# What a recorded step may add to the plain step's program outside the loops,
# operation by operation: δ out of the backward pass: its stack, max|δ|, live units
# (2), Σ(δ/max)², the rows (≈ 6); moments of z and a: one stack, sums, centred sums,
# √ (≈ 5), saturation (1); both histograms over one padded stack: bounds,
# positions, one scatter (≈ 14); the norms of ∇W, ∇b and W: 9 sums, one
# conditional, glue (≈ 16); δ samples, dead fractions, counts and the one
# concatenation with its converts (≈ 25, XLA leaves most fields' last step apart);
# the z and a rows of the layers outside the loops (layer 1 and the scan's
# remainder: ≤ 2·UNROLL); the copies buffer assignment adds around the loops
# (≈ 6). About 73 + 2·UNROLL: 83 measured at depth 9 and 33 (jax 0.10.2), a bound of
# 100 for XLA's own changes; one set of δ reductions per layer and one conditional
# per norm measured 111 here, and 20 more operations per loop trip.
ENTRY_BOUND = 100
LOOP_BOUND = 3  # per trip: the z and a rows (forward), δ (backward)


def test_the_recorded_step_adds_a_bounded_number_of_operations_whatever_the_depth():
    for depth in (9, 33):  # the same remainder of the scan's unrolling
        plain, probed = optimized(bench_spec(depth), False), optimized(bench_spec(depth), True)
        added = probed["ENTRY"] - plain["ENTRY"]
        assert 0 < added <= ENTRY_BOUND, (depth, plain, probed)
        # the scanned layers: forward and backward loops, one trip per UNROLL layers;
        # a trip of the recorded step writes the z and a rows (forward) and δ
        # (backward) and does nothing else more than the plain step's
        loops = sorted(v for k, v in plain.items() if k != "ENTRY")
        loops_probed = sorted(v for k, v in probed.items() if k != "ENTRY")
        assert len(loops) == len(loops_probed) == 2
        assert sum(loops_probed) - sum(loops) <= LOOP_BOUND, (plain, probed)


def test_deeper_networks_do_not_add_operations_to_the_recorded_step():
    shallow, deep = optimized(bench_spec(9), True), optimized(bench_spec(33), True)
    assert sorted(shallow.values())[:-1] == sorted(deep.values())[:-1]  # the loops
    assert abs(shallow["ENTRY"] - deep["ENTRY"]) <= 2  # XLA's layout of a copy or two


@pytest.fixture
def reduced_in_backward(monkeypatch):
    """δ reduced per layer inside the backward pass: the path of large layers."""
    monkeypatch.setattr(jax_probes, "STACK_MAX_VALUES", 0)
    compiled_step.cache_clear()  # compiled steps are cached by spec, not by this switch
    yield
    compiled_step.cache_clear()


SMALL_AND_LARGE = [
    # microbatches, more outputs than units (δ padded to the output's width), clipping
    RunSpec(engine="numpy", dtype="float64", device="cpu", depth=5, width=4, batch_size=9,
            microbatches=2, clip=0.4, activation="tanh", optimizer="momentum", steps=3,
            seed=2, record=RecordSpec(hist_bins=8, delta_samples=3, jacobian_every=2)),
    RunSpec(engine="numpy", dtype="float64", device="cpu", depth=4, width=7,
            dataset="spirals", loss="cross_entropy", residual=True, norm="layernorm",
            activation="relu", optimizer="adam", batch_size=6, steps=3, seed=4,
            record=RecordSpec(hist_bins=8, delta_samples=3)),
]


@pytest.mark.parametrize("spec", SMALL_AND_LARGE, ids=["microbatched", "residual"])
def test_delta_stacked_out_of_the_backward_pass_agrees_with_the_tape(spec):
    assert jax_probes.stacks_delta(spec, spec.batch_size)
    assert_agree(spec, "jax")


@pytest.mark.parametrize("spec", SMALL_AND_LARGE, ids=["microbatched", "residual"])
def test_delta_reduced_inside_the_backward_pass_agrees_with_the_tape(spec, reduced_in_backward):
    assert not jax_probes.stacks_delta(spec, spec.batch_size)
    assert_agree(spec, "jax")


def test_both_ways_of_reducing_delta_give_the_same_record(monkeypatch):
    spec = SMALL_AND_LARGE[0].replace(engine="jax")
    compiled_step.cache_clear()
    stacked = list(iter_steps(spec))
    monkeypatch.setattr(jax_probes, "STACK_MAX_VALUES", 0)
    compiled_step.cache_clear()
    reduced = list(iter_steps(spec))
    compiled_step.cache_clear()
    for a, b in zip(stacked, reduced, strict=True):
        for la, lb in zip(a["layers"], b["layers"], strict=True):
            assert la["delta_norm"] == pytest.approx(lb["delta_norm"], rel=1e-13)
            assert la["dead_frac"] == lb["dead_frac"]
            assert la["delta_log_hist"]["counts"] == lb["delta_log_hist"]["counts"]
            assert la["a_hist"] == lb["a_hist"]
            assert la["delta_sample"] == pytest.approx(lb["delta_sample"], rel=1e-13)


def test_the_histograms_count_as_the_shared_numpy_histograms_on_awkward_rows():
    """jax_probes._histograms (fewer operations per value, one loop for XLA's CPU
    thread pool) against probes.histograms on NumPy: NaN and ±Inf outside every
    bin, a row without a finite value, an all-equal row, a range that overflows
    (hi − lo = ∞), rows of different lengths (NaN padding), float32 and float64."""
    import jax
    import numpy as np

    from backproplab.engines import probes
    from backproplab.xp import NUMPY

    rng = np.random.default_rng(3)
    for dtype, big in ((np.float32, 3e38), (np.float64, 1e308)):
        rows = rng.standard_normal((7, 40)).astype(dtype)
        rows[0, 3], rows[1, 4], rows[1, 5] = np.nan, np.inf, -np.inf
        rows[2] = np.nan
        rows[3] = 0.25
        rows[4, ::2], rows[4, 1::2] = big, -big
        short = rng.standard_normal((2, 9)).astype(dtype)
        with jax.enable_x64(dtype == np.float64):
            lo, hi, counts, padded = jax.jit(jax_probes._histograms, static_argnums=1)(
                [rows, short], 6)
        padded = np.asarray(padded)
        with np.errstate(all="ignore"):  # the overflowing range, as intended
            ref_lo, ref_hi, ref_counts = probes.histograms(NUMPY, padded, 6)
        assert padded.shape == (9, 40) and np.isnan(padded[7:, 9:]).all()
        np.testing.assert_array_equal(np.asarray(counts), ref_counts)
        np.testing.assert_array_equal(np.asarray(lo), ref_lo)
        np.testing.assert_array_equal(np.asarray(hi), ref_hi)
        counts = np.asarray(counts)
        assert counts[3].sum() == 40 and counts[2].sum() == 0  # all equal; none finite
        assert counts[0].sum() == 39 and counts[1].sum() == 38  # NaN, ±Inf in no bin
