"""Real data sets (digits, MNIST-1D), their seeded split, test accuracy in the record,
and Glorot's "standard" initialization."""

import numpy as np
import pytest
import torch

from backproplab.api.records import validate_record
from backproplab.api.schemas import validate_config
from backproplab.engines import iter_steps, make_engine, run
from backproplab.model import RecordSpec, RunSpec, batch, effective_sigma_w2, init_weight
from backproplab.model.data import held_out, real_data, split
from backproplab.runs.codec import decode, encode


def test_digits_are_sklearns_scaled_and_centred():
    from sklearn.datasets import load_digits

    raw = load_digits()
    x, y = real_data("digits")
    assert x.shape == (1797, 64) and np.array_equal(y, raw.target)
    np.testing.assert_allclose(x, raw.data / 16.0 - (raw.data / 16.0).mean(axis=0),
                               atol=1e-15)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-12)


def test_mnist1d_is_generated_offline_with_its_published_defaults():
    import random

    np.random.seed(123)
    random.seed(123)
    before = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    x, y = real_data("mnist1d")
    assert (np.random.random(), random.random()) == before  # global generators untouched
    assert x.shape == (5000, 40) and np.bincount(y).tolist() == [500] * 10
    assert abs(x.mean()) < 1e-9 and abs(x.std() - 1.0) < 1e-9  # the package standardizes


@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_split_is_fixed_by_the_seed_disjoint_and_complete(name):
    n = len(real_data(name)[1])
    train, test = split(name, seed=3)
    assert len(test) == round(0.2 * n) and len(train) + len(test) == n
    assert not set(train) & set(test)
    again_train, again_test = split(name, seed=3)
    assert np.array_equal(test, again_test) and np.array_equal(train, again_train)
    assert not np.array_equal(test, split(name, seed=4)[1])


def test_batches_come_from_the_train_part_only():
    spec = RunSpec(dataset="digits", batch_size=50, seed=1)
    x_all, _ = real_data("digits")
    train, test = split("digits", 1)
    test_rows = {x_all[i].tobytes() for i in test} - {x_all[i].tobytes() for i in train}
    for step in range(20):
        x, labels, targets = batch(spec, step)
        assert x.shape == (50, 64) and targets.shape == (50, 10)
        assert np.array_equal(np.argmax(targets, 1), labels)
        assert not {row.tobytes() for row in x} & test_rows
    assert spec.in_features == 64 and spec.out_features == 10
    assert RunSpec(dataset="mnist1d").in_features == 40


def test_record_test_accuracy_matches_a_torch_forward_pass():
    spec = RunSpec(dataset="digits", depth=3, width=32, activation="tanh", steps=30,
                   loss="cross_entropy", lr=0.1, dtype="float64", seed=2,
                   record=RecordSpec(every=10))
    engine = make_engine(spec)
    steps = list(iter_steps(spec, engine=engine))
    # the last record's test accuracy was taken after the last update: the final weights
    params = [torch.tensor(p) for p in engine.params_host()]
    x, labels = held_out(spec)
    h = torch.tensor(x)
    for i in range(spec.depth):
        h = torch.tanh(h @ params[2 * i].T + params[2 * i + 1])
    predicted = (h @ params[-2].T + params[-1]).argmax(1).numpy()
    assert steps[-1]["test_accuracy"] == pytest.approx(float(np.mean(predicted == labels)),
                                                       abs=1e-12)
    assert steps[-1]["test_accuracy"] > 0.5  # it learned something: chance is 0.1
    assert all(0.0 <= s["test_accuracy"] <= 1.0 for s in steps)


def test_records_stay_compatible_and_test_accuracy_round_trips():
    synthetic = run(RunSpec(depth=2, width=8, steps=2))
    assert "test_accuracy" not in synthetic["steps"][0]  # synthetic data: no new field
    record = run(RunSpec(dataset="digits", depth=2, width=8, steps=2, loss="cross_entropy"))
    assert isinstance(record["steps"][-1]["test_accuracy"], float)
    back = validate_record(decode(encode(record)))
    assert back["steps"][-1]["test_accuracy"] == record["steps"][-1]["test_accuracy"]
    old = decode(encode(synthetic))  # a record written before the field existed
    assert validate_record(old)["steps"][0].get("test_accuracy") is None


def test_the_api_config_offers_the_new_choices():
    cfg = validate_config({"dataset": "mnist1d", "init": "standard"})
    assert cfg.to_spec().in_features == 40
    from backproplab.api.schemas import RunConfig

    schema = RunConfig.model_json_schema()
    dataset = schema["properties"]["dataset"]
    assert {"digits", "mnist1d"} <= set(dataset.get("enum", []))


def test_standard_init_is_uniform_with_glorots_bound_and_sigma_w2_one_third():
    rng = np.random.default_rng(0)
    fan_in = 400
    W = init_weight(rng, "standard", 300, fan_in, 1.0)
    assert np.abs(W).max() <= 1 / np.sqrt(fan_in) and np.abs(W).max() > 0.99 / np.sqrt(fan_in)
    # Var U[−a, a] = a²/3: σ_w² = fan_in·Var = 1/3 (sampling error of 120 000 draws ~0.4%)
    assert fan_in * W.var() == pytest.approx(1 / 3, rel=0.02)
    assert effective_sigma_w2("standard", 1.0, fan_in, 300) == pytest.approx(1 / 3)
    assert effective_sigma_w2("standard", 2.0, fan_in, 300) == pytest.approx(4 / 3)


def test_mnist1d_without_its_package_says_how_to_get_it(monkeypatch):
    import sys

    from backproplab.model import data

    data._mnist1d.cache_clear()
    monkeypatch.setitem(sys.modules, "mnist1d", None)
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    try:
        with pytest.raises(ValueError, match=r"pip install 'backproplab\[mnist1d\]'"):
            real_data("mnist1d")
    finally:
        data._mnist1d.cache_clear()


def test_a_network_that_overflowed_classifies_nothing():
    from backproplab.engines.evaluate import held_out_accuracy

    spec = RunSpec(dataset="digits", depth=2, width=8)
    params = [np.full(p.shape, np.nan) for p in make_engine(spec).params_host()]
    assert held_out_accuracy(spec, params) == 0.0
    assert held_out_accuracy(RunSpec(dataset="xor"), params) is None
