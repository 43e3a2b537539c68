"""The seed ensemble's spread of ‖δ(l)‖ at initialization: computed batched, it is
network by network what ordinary one-seed runs record; for ReLU its variance is
Hanin & Nica's; the route that serves it is bounded and says why when it refuses."""

import math
import time

import numpy as np
import pytest

from backproplab.engines import iter_steps
from backproplab.engines.ensemble import (
    cached_seed_spread,
    ensemble_delta_norms,
    seed_spread,
)
from backproplab.model.spec import RunSpec
from backproplab.theory.finite_width import relu_log_norm2_variance

SEEDS = 5


def one_seed_run(spec: RunSpec) -> np.ndarray:
    """‖δ(l)‖ at step 0 of an ordinary run with this spec, every layer (output last)."""
    return np.array([layer["delta_norm"] for layer in next(iter_steps(spec))["layers"]])


@pytest.mark.parametrize("engine", ["numpy", "torch"])
@pytest.mark.parametrize("changes", [
    {"activation": "tanh"},
    {"activation": "relu", "init": "he_normal", "sigma_b": 0.1},
    {"activation": "gelu", "init": "orthogonal", "input_dim": 40},
    {"activation": "tanh", "residual": True, "residual_scale": "1/sqrt(depth)",
     "norm": "layernorm"},
    {"activation": "sigmoid", "dataset": "spirals", "loss": "cross_entropy",
     "delta_clip": 0.05},
    {"activation": "relu", "microbatches": 2, "checkpoint": "sqrt", "clip": 0.5},
])
def test_the_batched_ensemble_is_each_seeds_own_run(engine, changes):
    """Network k of the batched pass against a run with seed 7+k (float64), 1e-10."""
    spec = RunSpec(depth=7, width=24, batch_size=12, steps=3, dtype="float64", seed=7,
                   engine=engine, **changes)
    batched = ensemble_delta_norms(spec, SEEDS)
    assert batched.shape == (SEEDS, spec.depth + 1)
    for k in range(SEEDS):
        np.testing.assert_allclose(batched[k], one_seed_run(spec.replace(seed=7 + k)),
                                   rtol=1e-10, atol=0)


def test_the_spread_is_the_percentiles_of_those_runs():
    spec = RunSpec(depth=6, width=16, batch_size=8, dtype="float64", activation="tanh",
                   seed=3)
    spread = seed_spread(spec, 9)
    runs = np.array([one_seed_run(spec.replace(seed=3 + k))[:6] for k in range(9)])
    logs = np.log(runs)
    assert spread["seeds"] == list(range(3, 12)) and spread["layers"] == list(range(6))
    np.testing.assert_allclose(spread["ln_delta_norm"]["q10"], np.quantile(logs, 0.1, 0),
                               rtol=1e-10)
    np.testing.assert_allclose(spread["ln_delta_norm"]["sd"], logs.std(0, ddof=1), rtol=1e-10)
    ratio = logs - logs[:, -1:]
    np.testing.assert_allclose(spread["ln_ratio_to_last"]["q90"], np.quantile(ratio, 0.9, 0),
                               rtol=1e-10, atol=1e-14)
    assert spread["ln_ratio_to_last"]["q50"][-1] == 0.0  # the anchor layer itself


def test_relu_ensemble_variance_is_hanin_and_nicas():
    """Var ln(‖δ(0)‖²/‖δ(L)‖²) over 256 seeds of the Lab's default shape (depth 20,
    width 128, He, ReLU), one input as in the theorem, against 5 Σ 1/n = 0.742.

    Tolerance 30%: the sample variance of 256 draws has a relative sd of √(2/255) = 9%
    (3 sd: 27%), and the law is the leading order in Σ 1/n: with 4096 seeds the
    measured value is 1.04× it at this shape (1.21× at width 32, depth 12)."""
    spec = RunSpec(activation="relu", init="he_normal", depth=20, width=128, batch_size=1,
                   dtype="float64")
    norms = ensemble_delta_norms(spec, 256)
    logs = 2 * np.log(norms[:, 0] / norms[:, spec.depth - 1])
    predicted = relu_log_norm2_variance([128] * (spec.depth - 1))
    assert float(np.var(logs, ddof=1)) == pytest.approx(predicted, rel=0.3)
    # the band the route serves is the same ensemble's: its sd of ln ‖δ(0)‖/‖δ(L)‖ is
    # half that of ln ‖δ‖² (the law's σ/2)
    spread = seed_spread(spec, 256)
    assert spread["ln_ratio_to_last"]["sd"][0] == pytest.approx(
        0.5 * float(np.std(logs, ddof=1)), rel=1e-9)


def test_an_exploding_networks_overflow_is_counted_not_dropped():
    """The exploding preset's shape (tanh, σ_w = 3.5, depth 300) in float32: ‖δ(0)‖
    overflows in every network, as in each one-seed run."""
    spec = RunSpec(activation="tanh", init="normal", sigma_w=3.5, depth=300, width=128,
                   batch_size=4, dtype="float32", steps=1)
    spread = seed_spread(spec, 4)
    runs = [one_seed_run(spec.replace(seed=k)) for k in range(4)]
    assert all(not np.isfinite(r[0]) for r in runs)  # the runs do overflow at layer 0
    assert spread["nonfinite"][0] == 4
    assert spread["ln_delta_norm"]["q10"][0] == math.inf  # an overflow sorts as +∞
    assert math.isnan(spread["ln_delta_norm"]["mean"][0])  # no finite value to average
    assert spread["nonfinite"][-1] == 0  # the last hidden layer is finite


def test_the_default_config_takes_well_under_a_second():
    spec = RunSpec()  # depth 20, width 128, batch 64, float32, tanh
    seed_spread(spec, 32)  # warm (imports, BLAS)
    times = []
    for seed in (101, 102, 103):
        start = time.perf_counter()
        seed_spread(spec.replace(seed=seed), 32)
        times.append(time.perf_counter() - start)
    assert min(times) < 0.75, times  # 0.3–0.5 s on a loaded 2-core machine


def test_the_cache_answers_a_change_of_training_only():
    spec = RunSpec(depth=5, width=16, batch_size=8, seed=11)
    first = cached_seed_spread(spec, 4)
    assert cached_seed_spread(spec.replace(lr=0.5, steps=900, engine="torch"), 4) is first
    assert cached_seed_spread(spec.replace(seed=12), 4) is not first


# --- the route ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    from fastapi.testclient import TestClient

    from backproplab.api.app import create_app
    from backproplab.settings import Settings

    with TestClient(create_app(Settings())) as c:
        yield c


def test_the_route_serves_the_ensembles_spread(client):
    from conftest import strict_loads

    r = client.get("/api/theory/spread?activation=tanh&depth=6&width=16&batch_size=8"
                   "&seed=4&seeds=6&lr=0.3&residual=false")
    assert r.status_code == 200, r.text
    got = strict_loads(r.text)
    spec = RunSpec(activation="tanh", depth=6, width=16, batch_size=8, seed=4, lr=0.3)
    want = seed_spread(spec, 6)
    assert got["seeds"] == want["seeds"] and got["dtype"] == "float32"
    for key in ("q10", "q50", "q90", "mean", "sd"):
        assert got["ln_ratio_to_last"][key] == pytest.approx(want["ln_ratio_to_last"][key],
                                                             rel=1e-12, abs=1e-15)


def test_a_large_network_gets_a_smaller_ensemble_not_none(client):
    """The exploding preset (depth 300, width 128, batch 64): 32 networks would be
    2.0e10 multiply-adds, over the 6e9 limit; 9 fit, and the answer says so."""
    from backproplab.engines.ensemble import MAX_WORK, ensemble_work

    r = client.get("/api/theory/spread?activation=tanh&depth=300&width=128&init=normal"
                   "&sigma_w=3.5&steps=1")
    assert r.status_code == 200, r.text
    seeds = len(r.json()["seeds"])
    spec = RunSpec(depth=300, width=128)
    assert seeds == int(MAX_WORK // ensemble_work(spec, 1)) == 9


@pytest.mark.parametrize("query, status, words", [
    ("seeds=1", 422, "seeds must be a whole number from 2 to 64, not '1'"),
    ("seeds=many", 422, "seeds must be a whole number from 2 to 64"),
    ("width=1024&depth=100&steps=1&seeds=64", 422, "the seed ensemble is too large"),
    ("width=0", 422, "greater than or equal to 1"),
])
def test_the_route_refuses_in_words(client, query, status, words):
    r = client.get(f"/api/theory/spread?{query}")
    assert r.status_code == status
    assert words in r.text


def test_the_route_stops_at_the_time_limit():
    from fastapi.testclient import TestClient

    from backproplab.api.app import create_app
    from backproplab.settings import Settings

    with TestClient(create_app(Settings(max_request_seconds=0.01))) as c:
        r = c.get("/api/theory/spread?depth=100&width=128&batch_size=64&steps=1&seeds=8"
                  "&seed=999")
    assert r.status_code == 503
    assert "the seed ensemble took longer than 0.01 s" in r.json()["detail"]
