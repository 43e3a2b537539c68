"""The JAX engine's own contracts: float32 stays float32 whatever x64 says elsewhere,
one host transfer per recorded step and none otherwise, checkpointing by
jax.checkpoint (less memory, same numbers), a program whose size does not grow
with depth, one compilation shared by runs that differ in seed, clear refusals,
and a Python without jax that still runs the other engines."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from backproplab.engines import iter_steps, make_engine
from backproplab.engines.compiled import count_equations
from backproplab.engines.jax_engine import JaxEngine, compile_key, compiled_step
from backproplab.model import RecordSpec, RunSpec

SMALL = RunSpec(engine="jax", depth=4, width=8, batch_size=6, steps=4, dataset="spirals",
                loss="cross_entropy", optimizer="adam", record=RecordSpec(every=2,
                                                                          jacobian_every=2))


def dtypes_in(jaxpr) -> set[str]:
    """Every dtype of every variable in a jaxpr and its nested jaxprs."""
    found = {str(v.aval.dtype) for v in jaxpr.invars + jaxpr.outvars if hasattr(v, "aval")}
    for eqn in jaxpr.eqns:
        found |= {str(v.aval.dtype) for v in eqn.outvars}
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found |= dtypes_in(inner)
    return found


def primitives_in(jaxpr) -> set[str]:
    found = set()
    for eqn in jaxpr.eqns:
        found.add(eqn.primitive.name)
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found |= primitives_in(inner)
    return found


def step_jaxpr(engine: JaxEngine, probe=True, spectrum=True):
    fn = engine.step_function(probe, spectrum, True)
    with engine.scope():
        args, _ = engine.inputs(0, True)
        return jax.make_jaxpr(fn)(engine.state, *args).jaxpr


def test_float32_stays_float32_even_where_x64_is_on():
    with jax.enable_x64(True):  # as if another part of the process had switched it on
        engine = make_engine(SMALL.replace(dtype="float32"))
        found = dtypes_in(step_jaxpr(engine))
        records = list(iter_steps(SMALL.replace(dtype="float32"), engine=engine))
    assert "float32" in found and "float64" not in found, found
    assert all(np.isfinite(r["loss"]) for r in records)
    assert engine.params[0].dtype == jnp.float32


def test_delta_clip_and_per_example_stay_in_one_float32_program():
    """Both traced into the step: δ clipping (the cap's primitive in the backward) and
    per-example gradients (a vmapped grad) add no f64 to a float32 step."""
    spec = SMALL.replace(dtype="float32", delta_clip=0.05,
                         record=RecordSpec(every=2, jacobian_every=2, per_example=True))
    with jax.enable_x64(True):
        engine = make_engine(spec)
        found = dtypes_in(step_jaxpr(engine))
        records = list(iter_steps(spec, engine=engine))
    assert "float64" not in found, found
    assert compile_key(spec) != compile_key(SMALL.replace(dtype="float32", delta_clip=0.05))
    for record in records:
        for layer in record["layers"]:
            stats = layer["per_example"]
            assert stats["min"] <= stats["median"] <= stats["max"]
            assert stats["mean_error"] < 1e-5  # float32: the mean against the batch ∇W


def test_float64_runs_do_not_switch_x64_on_for_the_process():
    engine = make_engine(SMALL.replace(dtype="float64"))
    records = list(iter_steps(SMALL.replace(dtype="float64"), engine=engine))
    assert engine.params[0].dtype == jnp.float64
    assert "float64" in dtypes_in(step_jaxpr(engine))
    assert records and jnp.asarray(1.0).dtype == jnp.float32  # this thread: still 32-bit
    assert not jax.config.jax_enable_x64


def test_one_host_transfer_per_recorded_step_and_none_otherwise(monkeypatch):
    spec = SMALL.replace(steps=7, record=RecordSpec(every=3, jacobian_every=3))
    transfers = []
    real = jax.device_get

    def counting(x):
        if any(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(x)):
            transfers.append(1)
        return real(x)

    engine = make_engine(spec)
    monkeypatch.setattr(jax, "device_get", counting)
    with jax.transfer_guard_device_to_host("disallow"):  # an implicit read would raise
        records = list(iter_steps(spec, engine=engine))
    assert [r["step"] for r in records] == [0, 3, 6]
    assert len(transfers) == 3
    assert all("jacobian_sv" in r for r in records)


def test_checkpointing_uses_jax_checkpoint_keeps_less_and_changes_nothing():
    base = RunSpec(engine="jax", dtype="float64", depth=36, width=64, batch_size=128,
                   steps=2, activation="tanh")
    plain, ckpt = make_engine(base), make_engine(base.replace(checkpoint="sqrt"))
    # jax.checkpoint's primitive (remat2): its segments are recomputed in the backward
    assert "remat2" in primitives_in(step_jaxpr(ckpt, False, False))
    assert "remat2" not in primitives_in(step_jaxpr(plain, False, False))

    def temp_bytes(engine):
        fn = engine.step_function(False, False, True)
        with engine.scope():
            args, _ = engine.inputs(0, True)
            return fn.lower(engine.state, *args).compile().memory_analysis().temp_size_in_bytes

    assert temp_bytes(ckpt) < 0.6 * temp_bytes(plain)
    for a, b in zip(iter_steps(base, engine=plain),
                    iter_steps(base.replace(checkpoint="sqrt"), engine=ckpt), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-13)
        for la, lb in zip(a["layers"], b["layers"], strict=True):
            assert la["delta_norm"] == pytest.approx(lb["delta_norm"], rel=1e-12)


def test_the_compiled_program_does_not_grow_with_depth():
    sizes = [count_equations(step_jaxpr(make_engine(SMALL.replace(depth=d)))) for d in (9, 200)]
    assert sizes[0] == sizes[1]


def test_runs_that_differ_in_seed_or_rate_share_one_compiled_step():
    a = SMALL.replace(seed=1, lr=0.1, steps=3)
    b = SMALL.replace(seed=2, lr=0.02, steps=9, sigma_w=1.3)
    assert compile_key(a) == compile_key(b)
    fn = compiled_step(compile_key(a), True, False, True)
    list(iter_steps(a))
    size = fn._cache_size()
    list(iter_steps(b))
    assert fn._cache_size() == size  # no new trace, no new compilation


def test_dtypes_and_devices_the_engine_cannot_run_are_refused_in_words():
    from backproplab.api.schemas import validate_config

    with pytest.raises(ValueError, match="dtype 'bfloat16' needs engine 'torch'"):
        validate_config({"engine": "jax", "dtype": "bfloat16"})
    with pytest.raises(ValueError, match="supports float32 and float64"):
        JaxEngine(SMALL.replace(dtype="bfloat16"))
    if "cuda" not in [d.platform for d in jax.devices()]:
        with pytest.raises(ValueError, match="no CUDA device"):
            make_engine(SMALL.replace(device="cuda"))


WITHOUT_JAX = r"""
import json, sys
sys.modules["jax"] = None  # import jax raises ImportError, as where it is not installed
sys.modules["jaxlib"] = None
from fastapi.testclient import TestClient
from backproplab.api.app import create_app
from backproplab.engines import make_engine, run
from backproplab.model import RunSpec
client = TestClient(create_app())
out = {"engines": client.get("/api/info").json()["engines"],
       "compile": client.get("/api/compile?depth=2&width=4").json()["detail"]}
record = run(RunSpec(depth=2, width=4, batch_size=4, steps=2))
out["numpy_steps"] = len(record["steps"])
try:
    make_engine(RunSpec(engine="jax"))
except ValueError as exc:
    out["refused"] = str(exc)
out["imported_jax"] = any(k.startswith("jax") and sys.modules[k] is not None
                          for k in sys.modules)
print(json.dumps(out))
"""


def test_a_python_without_jax_runs_the_other_engines():
    done = subprocess.run([sys.executable, "-c", WITHOUT_JAX], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "jax" not in out["engines"] and "numpy" in out["engines"]
    assert out["numpy_steps"] == 2
    assert "needs JAX" in out["refused"] and "needs JAX" in out["compile"]
    assert not out["imported_jax"]


def test_a_jax_run_through_the_api_is_a_whole_run_record():
    import time

    from fastapi.testclient import TestClient

    from backproplab.api.app import create_app

    config = {"engine": "jax", "dtype": "float64", "depth": 3, "width": 5, "batch_size": 4,
              "steps": 3, "dataset": "xor", "seed": 4}
    with TestClient(create_app()) as client:
        started = client.post("/api/runs", json=config)
        assert started.status_code == 202
        for _ in range(600):
            body = client.get(f"/api/runs/{started.json()['id']}").json()
            if body["status"] in ("done", "error"):
                break
            time.sleep(0.1)
    assert body["status"] == "done", body["error"]
    record = body["record"]
    assert record["environment"]["engine"] == "jax"
    assert record["environment"]["jax"] == jax.__version__
    direct = list(iter_steps(RunSpec(**{**config, "record": RecordSpec()})))
    assert [s["loss"] for s in record["steps"]] == pytest.approx(
        [s["loss"] for s in direct], rel=1e-12)
