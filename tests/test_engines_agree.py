"""The tape, torch and JAX engines agree to 1e-10 relative in float64: losses, δ
norms, gradient norms, every probe, Jacobian spectra and the updated weights."""

import math

import numpy as np
import pytest

from backproplab.engines import iter_steps, make_engine
from backproplab.engines.optim import ADAM_EPS
from backproplab.model import ACTIVATION_NAMES, INIT_NAMES, RecordSpec, RunSpec

pytest.importorskip("torch")

RTOL = 1e-10
KEYS = ("delta_norm", "grad_w_norm", "grad_b_norm", "weight_norm", "update_ratio", "z_mean",
        "z_std", "a_mean", "a_std", "saturated_frac", "dead_frac")


def random_configs(n=20, seed=0):
    """Random small configs in which every activation, init, residual, norm,
    optimizer and loss choice appears at least once."""
    rng = np.random.default_rng(seed)
    configs = []
    for k in range(n):
        configs.append(RunSpec(
            engine="numpy", dtype="float64", device="cpu",
            depth=int(rng.integers(1, 7)), width=int(rng.integers(3, 17)),
            activation=ACTIVATION_NAMES[k % len(ACTIVATION_NAMES)],
            init=INIT_NAMES[k % len(INIT_NAMES)],
            sigma_w=float(rng.uniform(0.6, 1.8)), sigma_b=float(rng.choice([0.0, 0.2])),
            residual=bool(k % 3 == 1), residual_scale=("1/sqrt(depth)" if k % 6 == 1 else 0.7),
            norm="layernorm" if k % 4 == 2 else "none",
            dataset=["gaussian", "spirals", "circles", "xor"][k % 4],
            input_dim=int(rng.integers(2, 9)),
            loss="cross_entropy" if k % 2 else "mse",
            optimizer=["sgd", "momentum", "adam"][k % 3],
            lr=0.05, batch_size=int(rng.integers(4, 13)),
            microbatches=int(rng.choice([1, 2, 3])),
            clip=0.5 if k % 5 == 3 else None,
            delta_clip=0.05 if k % 4 == 1 else None,
            checkpoint={5: "sqrt", 3: "every"}.get(k % 7, "none"), checkpoint_every=2,
            steps=3, seed=k,
            record=RecordSpec(every=1, hist_bins=8, delta_samples=3, jacobian_every=2,
                              per_example=k % 3 == 2),
        ))
    return configs


CONFIGS = random_configs()


def test_configs_cover_every_choice():
    seen = {f: {getattr(c, f) for c in CONFIGS}
            for f in ("activation", "init", "residual", "norm", "optimizer", "loss")}
    assert seen["activation"] == set(ACTIVATION_NAMES) and seen["init"] == set(INIT_NAMES)
    assert seen["residual"] == {True, False} and seen["norm"] == {"none", "layernorm"}
    assert seen["optimizer"] == {"sgd", "momentum", "adam"}
    assert seen["loss"] == {"mse", "cross_entropy"}


def close(a, b, what):
    if math.isnan(a) and math.isnan(b):
        return
    assert a == pytest.approx(b, rel=RTOL, abs=1e-14), what


@pytest.mark.parametrize("other", ["torch", "jax"])
@pytest.mark.parametrize("spec", CONFIGS, ids=[f"cfg{i}" for i in range(len(CONFIGS))])
def test_tape_and_other_engines_agree(spec, other):
    assert_agree(spec, other)


# beyond the random configs: the JAX engine scans the hidden stack in blocks of
# jax_step.UNROLL layers and checkpoints segments of it; wide nets take the top-k
# spectrum by subspace iteration
DEEP_AND_WIDE = [
    RunSpec(engine="numpy", dtype="float64", device="cpu", depth=11, width=9, residual=True,
            residual_scale="1/sqrt(depth)", activation="gelu", checkpoint="sqrt",
            optimizer="adam", microbatches=2, batch_size=6, steps=3, seed=3, clip=0.3,
            record=RecordSpec(hist_bins=8, delta_samples=3, jacobian_every=2)),
    RunSpec(engine="numpy", dtype="float64", device="cpu", depth=3, width=260, dataset="xor",
            activation="tanh", loss="cross_entropy", batch_size=4, steps=2, seed=5,
            norm="layernorm", record=RecordSpec(hist_bins=8, delta_samples=3,
                                                jacobian_every=1, jacobian_topk=6)),
]


@pytest.mark.parametrize("spec", DEEP_AND_WIDE, ids=["deep-checkpointed", "wide"])
def test_deep_and_wide_networks_agree(spec):
    assert_agree(spec, "jax")


def assert_agree(spec, other):
    tape_engine = make_engine(spec)
    other_engine = make_engine(spec.replace(engine=other))
    for a, b in zip(iter_steps(spec, engine=tape_engine),
                    iter_steps(spec.replace(engine=other), engine=other_engine), strict=True):
        close(a["loss"], b["loss"], "loss")
        close(a["grad_norm"], b["grad_norm"], "global gradient norm")
        close(a["clip_factor"], b["clip_factor"], "clip factor")
        for la, lb in zip(a["layers"], b["layers"], strict=True):
            for key in KEYS:
                close(la[key], lb[key], f"step {a['step']} layer {la['index']} {key}")
            np.testing.assert_allclose(la["delta_sample"], lb["delta_sample"], rtol=RTOL,
                                       atol=1e-14)
            assert la["a_hist"]["counts"] == lb["a_hist"]["counts"]
            assert ("per_example" in la) == ("per_example" in lb)
            for key, value in la.get("per_example", {}).items():  # tape: its own pass;
                if key != "mean_error":  # torch: vmap(grad), or its own pass with δ clip;
                    # jax: vmap(grad) in its step, δ clipped in each example's backward
                    close(value, lb["per_example"][key], f"per-example ‖∇W‖ {key}")
                else:  # each engine's mean of per-example ∇W against its batch ∇W
                    assert value < 1e-12 and lb["per_example"][key] < 1e-12
        assert ("jacobian_sv" in a) == ("jacobian_sv" in b)
        if "jacobian_sv" in a:
            # an SVD is accurate relative to the largest singular value
            np.testing.assert_allclose(a["jacobian_sv"], b["jacobian_sv"], rtol=1e-9,
                                       atol=1e-9 * max(a["jacobian_sv"]))
    # Adam moves a weight by lr·g/(|g| + ε): for a gradient near ε (a nearly dead unit, a
    # cancellation with roundoff ~1e-16 absolute) the step's derivative in g reaches lr/ε,
    # so that roundoff shows up ×lr/ε in the weight, once per step
    atol = 1e-16 * spec.lr * spec.steps / ADAM_EPS if spec.optimizer == "adam" else 1e-14
    for pa, pb in zip(tape_engine.params_host(), other_engine.params_host(), strict=True):
        np.testing.assert_allclose(pa, pb, rtol=RTOL, atol=atol)


def test_delta_norm_is_rms_of_per_example_norms_by_hand():
    """δ(l) against an explicit backprop recurrence written with NumPy."""
    spec = RunSpec(dtype="float64", depth=3, width=6, activation="tanh", init="normal",
                   dataset="xor", loss="mse", steps=0, batch_size=5, sigma_b=0.3)
    record = next(iter_steps(spec))
    from backproplab.model import batch, init_params

    params = init_params(spec)
    x, _, y = batch(spec, 0)
    acts, zs = [x], []
    for W, b in params:
        zs.append(acts[-1] @ W.T + b)
        acts.append(np.tanh(zs[-1]) if len(zs) <= spec.depth else zs[-1])
    delta = 2 * (acts[-1] - y) / y.shape[1]  # per-example loss: mean over outputs
    deltas = [delta]
    for layer in range(spec.depth - 1, -1, -1):
        W_next = params[layer + 1][0]
        delta = (delta @ W_next) * (1 - np.tanh(zs[layer]) ** 2)  # δ(l) = (Wᵀδ(l+1)) ⊙ σ'
        deltas.insert(0, delta)
    for layer, d in zip(record["layers"], deltas, strict=True):
        expected = np.sqrt(np.mean(np.sum(d * d, axis=1)))
        assert layer["delta_norm"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("engine", ["numpy", "torch", "jax"])
def test_overflowing_runs_keep_nan_and_inf(engine):
    """Exploding gradients are data: records keep ±Inf/NaN, probes never crash."""
    spec = RunSpec(engine=engine, activation="tanh", depth=300, width=32, init="normal",
                   sigma_w=20.0, dtype="float32", steps=3, batch_size=8,
                   record=RecordSpec(jacobian_every=1))
    records = list(iter_steps(spec))
    assert len(records) == 3
    norms = [layer["delta_norm"] for r in records for layer in r["layers"]]
    assert any(not math.isfinite(v) for v in norms)
    for r in records:
        for layer in r["layers"]:
            assert sum(layer["a_hist"]["counts"]) <= 32 * 8
            assert all(c >= 0 for c in layer["delta_log_hist"]["counts"])


@pytest.mark.parametrize("engine", ["numpy", "torch", "jax"])
def test_vanishing_float32_norms_do_not_underflow(engine):
    """A float32 δ of 1e-30 has a norm of about 1e-30, not 0: its squares underflow,
    so the norm is retaken scaled. Reference: the same network in float64."""
    base = RunSpec(engine=engine, activation="sigmoid", depth=60, width=16, init="normal",
                   sigma_w=1.0, steps=0, batch_size=8, dataset="xor")
    low = next(iter_steps(base.replace(dtype="float32")))["layers"]
    high = next(iter_steps(base.replace(dtype="float64")))["layers"]
    assert min(layer["delta_norm"] for layer in high) < 1e-25  # squares < float32's tiny
    for a, b in zip(low, high, strict=True):
        for key in ("delta_norm", "grad_w_norm", "grad_b_norm"):
            assert a[key] == pytest.approx(b[key], rel=1e-3), (a["index"], key)
