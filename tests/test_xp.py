"""The array namespaces: the one overflow-safe norm on both libraries against exact
references, and the packed layout of the probe summaries by name."""

import math

import numpy as np
import pytest

from backproplab.engines.probes import Layout
from backproplab.xp import NUMPY, TorchXP

torch = pytest.importorskip("torch")
TORCH = TorchXP(torch)
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")


def _exact_norm(values: np.ndarray) -> float:
    """‖v‖ from the float64 values by math.hypot's correctly rounded sum of squares."""
    return math.hypot(*values.astype(np.float64).ravel().tolist())


CASES = [
    ("ordinary", np.float32, [3.0, -4.0, 12.0]),
    ("float32 squares underflow", np.float32, [1e-30, -2e-30, 3e-31]),
    ("float32 squares overflow", np.float32, [1e30, 2e30, -3e29]),
    ("float64 squares underflow", np.float64, [1e-200, -3e-201]),
    ("float64 squares overflow", np.float64, [1e200, 2e200]),
    ("zeros", np.float64, [0.0, 0.0]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_one_norm_rule_on_both_namespaces(case):
    _, dtype, values = case
    v = np.array(values, dtype=dtype)
    exact = _exact_norm(v)
    rows = np.stack([v, 2 * v])
    for xp, arr, stacked in ((NUMPY, v, rows), (TORCH, torch.from_numpy(v),
                                                torch.from_numpy(rows))):
        assert xp.safe_norm(arr) == pytest.approx(exact, rel=1e-6)
        np.testing.assert_allclose(np.asarray(xp.host(xp.norms([arr, arr]))), [exact, exact],
                                   rtol=1e-6)
        np.testing.assert_allclose(np.asarray(xp.host(xp.row_norms(stacked))),
                                   [exact, 2 * exact], rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_give_a_non_finite_norm(bad):
    v = np.array([1.0, bad, 2.0])
    for xp, arr in ((NUMPY, v), (TORCH, torch.from_numpy(v))):
        norm = xp.safe_norm(arr)
        assert math.isnan(norm) if math.isnan(bad) else norm == math.inf


def test_layout_packs_and_unpacks_by_name():
    layout = Layout((("a", 1), ("b", 1), ("hist", 3), ("c", 1), ("none", 0)))
    rows = 4
    values = {"a": np.arange(rows) * 1.0, "b": -np.arange(rows) * 1.0,
              "hist": np.arange(rows * 3.0).reshape(rows, 3), "c": np.full(rows, 7.0),
              "none": np.zeros((rows, 0))}
    block = layout.pack(NUMPY, values)
    assert block.shape == (rows, layout.width) == (rows, 6)
    back = layout.unpack(block)
    for name, value in values.items():
        np.testing.assert_array_equal(back[name], value)
    t_block = layout.pack(TORCH, {k: torch.from_numpy(v) for k, v in values.items()})
    np.testing.assert_array_equal(t_block.numpy(), block)
