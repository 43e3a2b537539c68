"""δ clipping against a backward pass written by hand in NumPy; the global gradient norm
and clip factor against torch autograd; per-example gradients against one pass per
example, and their mean against the batch gradient."""

import numpy as np
import pytest

from backproplab.engines import iter_steps, make_engine, memory, per_example
from backproplab.model.spec import RecordSpec, RunSpec

pytest.importorskip("torch")

ENGINES = ["numpy", "torch", "jax"]

SPEC = RunSpec(depth=4, width=12, input_dim=5, batch_size=10, dtype="float64",
               sigma_w=1.6, init="normal", steps=1)


def clipped_by_hand(params, x, targets, c):
    """tanh layers, a linear output, mean squared error; each example's δ(l) capped to
    [−c, c] (the mean-loss cotangent to c/B) before it is used."""
    B = len(x)
    acts = [x]
    for W, b in zip(params[0:-2:2], params[1:-2:2], strict=True):
        acts.append(np.tanh(acts[-1] @ W.T + b))
    out = acts[-1] @ params[-2].T + params[-1]
    g = np.clip(2.0 * (out - targets) / out.size, -c / B, c / B)
    grads, n_capped = [None] * len(params), 0
    for index in range(len(params) // 2 - 1, -1, -1):
        grads[2 * index], grads[2 * index + 1] = g.T @ acts[index], g.sum(0)
        if index == 0:
            break
        raw = (g @ params[2 * index]) * (1.0 - acts[index] ** 2)  # ⊙ tanh′(z)
        n_capped += int(np.sum(np.abs(raw) * B > c))
        g = np.clip(raw, -c / B, c / B)
    return grads, n_capped


def gradients(e, x, labels, targets) -> list[np.ndarray]:
    """The engine's mean-loss gradient of a batch: its own pass (tape, torch), or the
    loss its jitted step differentiates (JAX: jax_step.make_loss under jax.grad)."""
    if e.spec.engine != "jax":
        grads = e.forward_backward(e.to_device(x), labels, e.to_device(targets), None).grads
        return [np.asarray(e.xp.host(g), np.float64) for g in grads]
    import jax

    from backproplab.engines.jax_step import flat_params, make_loss

    with e.scope():
        loss = make_loss(e.spec, None)
        g = jax.grad(lambda p: loss(p, None, e.to_device(x), labels, e.to_device(targets))[0])
        return [np.asarray(v, np.float64) for v in flat_params(g(e.state["params"]))]


@pytest.mark.parametrize("engine", ENGINES)
def test_delta_clip_caps_each_element_of_delta_as_by_hand(engine):
    c = 0.02
    e = make_engine(SPEC.replace(engine=engine, delta_clip=c))
    x, labels, targets = e.make_batch(0)
    params = [np.asarray(p, dtype=np.float64) for p in e.params_host()]
    expected, n_capped = clipped_by_hand(params, x, targets, c)
    assert 0 < n_capped < 3 * SPEC.batch_size * SPEC.width  # the cap bites, not everywhere
    got = gradients(e, x, labels, targets)
    for g, want in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("engine", ENGINES)
def test_delta_clip_is_the_same_however_the_batch_is_split(engine):
    spec = SPEC.replace(delta_clip=0.02, engine=engine)
    whole = list(iter_steps(spec.replace(steps=2)))
    split = list(iter_steps(spec.replace(steps=2, microbatches=5)))
    for a, b in zip(whole, split, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-12)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_global_norm_and_clip_factor_against_autograd(engine):
    spec = SPEC.replace(engine=engine, clip=0.05)
    record = next(iter(iter_steps(spec)))
    _, grads = memory.torch_pass(spec)  # torch autograd in float64
    norm = float(np.sqrt(sum(np.sum(g * g) for g in grads)))
    assert record["grad_norm"] == pytest.approx(norm, rel=1e-12)
    assert norm > 0.05 and record["clip_factor"] == pytest.approx(0.05 / norm, rel=1e-12)
    loose = next(iter(iter_steps(spec.replace(clip=10 * norm))))
    assert loose["clip_factor"] == 1.0
    assert next(iter(iter_steps(spec.replace(clip=None))))["clip_factor"] == 1.0


def test_the_clipping_preset_clips():
    # frontend/js/presets.js, 'gradient clipping (tanh σ_w = 3, clip 1)'
    spec = RunSpec(activation="tanh", depth=30, init="normal", sigma_w=3, sigma_b=0,
                   clip=1, lr=0.5, steps=1)
    record = next(iter(iter_steps(spec)))
    assert record["grad_norm"] > 100 and record["clip_factor"] < 0.01
    assert record["clip_factor"] == pytest.approx(1 / record["grad_norm"], rel=1e-6)


def one_pass_per_example(e, x, labels, targets):
    """‖∇W_i(l)‖ from the engine's gradient of each example alone (a batch of one)."""
    norms = []
    for i in range(len(x)):
        g = gradients(e, x[i:i + 1], labels[i:i + 1], targets[i:i + 1])
        norms.append([float(np.linalg.norm(w)) for w in g[0::2]])
    return np.array(norms).T  # (layers, examples)


@pytest.mark.parametrize("engine,loss", [("numpy", "mse"), ("torch", "mse"),
                                         ("numpy", "cross_entropy"),
                                         ("torch", "cross_entropy")])
def test_per_example_gradients(engine, loss):
    spec = SPEC.replace(engine=engine, loss=loss, dataset="spirals" if loss != "mse"
                        else "gaussian", record=RecordSpec(per_example=True))
    e = make_engine(spec)
    x, labels, targets = e.make_batch(0)
    batch = e.forward_backward(e.to_device(x), labels, e.to_device(targets), None).grads
    reference = one_pass_per_example(e, x, labels, targets)
    computed = [per_example.from_pass(e, x, labels, targets, batch)]
    if engine == "torch":
        computed.append(per_example.with_vmap(e, x, labels, targets, batch))
    for layers in computed:
        for stats, norms in zip(layers, reference, strict=True):
            assert stats["mean_error"] < 1e-12
            q = np.quantile(norms, per_example.QUANTILES)
            got = [stats[k] for k in ("min", "q25", "median", "q75", "max")]
            np.testing.assert_allclose(got, q, rtol=1e-12)
            assert stats["mean"] == pytest.approx(norms.mean(), rel=1e-12)


@pytest.mark.parametrize("engine,loss,delta_clip", [
    ("jax", "mse", None), ("jax", "cross_entropy", None), ("jax", "mse", 0.02)])
def test_per_example_gradients_in_the_jax_step(engine, loss, delta_clip):
    """vmap(grad) inside the jitted step against the engine's gradient of each example
    alone; their mean against the batch gradient (δ clipping in each example's pass)."""
    spec = SPEC.replace(engine=engine, loss=loss, delta_clip=delta_clip,
                        dataset="spirals" if loss != "mse" else "gaussian",
                        record=RecordSpec(per_example=True))
    e = make_engine(spec)
    x, labels, targets = e.make_batch(0)
    reference = one_pass_per_example(e, x, labels, targets)
    record = next(iter(iter_steps(spec, engine=e)))
    for layer, norms in zip(record["layers"], reference, strict=True):
        stats = layer["per_example"]
        assert stats["mean_error"] < 1e-12
        q = np.quantile(norms, per_example.QUANTILES)
        got = [stats[k] for k in ("min", "q25", "median", "q75", "max")]
        np.testing.assert_allclose(got, q, rtol=1e-12)
        assert stats["mean"] == pytest.approx(norms.mean(), rel=1e-12)


def test_jax_per_example_chunks_give_the_same_norms(monkeypatch):
    """A batch cut into chunks of per-example gradients (a loop of them and a rest)
    gives what one vmap over the batch gives."""
    import jax

    from backproplab.engines import jax_delta

    spec = SPEC.replace(engine="jax", record=RecordSpec(per_example=True), batch_size=11)
    whole = next(iter(iter_steps(spec)))
    n_params = sum(p.size for p in make_engine(spec).params_host())
    monkeypatch.setattr(jax_delta, "CHUNK_ELEMENTS", 3 * n_params)  # 3 + 3 + 3 + 2 rows
    jax.clear_caches()
    from backproplab.engines.jax_engine import compiled_step

    compiled_step.cache_clear()
    chunked = next(iter(iter_steps(spec)))
    compiled_step.cache_clear()
    for a, b in zip(whole["layers"], chunked["layers"], strict=True):
        for key in ("min", "q25", "median", "q75", "max", "mean"):
            assert b["per_example"][key] == pytest.approx(a["per_example"][key], rel=1e-12)
        assert b["per_example"]["mean_error"] < 1e-12


@pytest.mark.parametrize("engine", ENGINES)
def test_per_example_in_the_step_record(engine):
    spec = SPEC.replace(engine=engine, record=RecordSpec(per_example=True), clip=0.01)
    record = next(iter(iter_steps(spec)))
    assert record["clip_factor"] < 1  # clipped: the per-example mean is of ∇W before it
    for layer in record["layers"]:
        assert layer["per_example"]["mean_error"] < 1e-12  # against the unclipped ∇W
        assert layer["per_example"]["min"] <= layer["per_example"]["median"]
    assert "per_example" not in next(iter(iter_steps(SPEC.replace(engine=engine))))[
        "layers"][0]
