"""Full Jacobian of f: R^n -> R^m through an MLP, by forward mode (n JVPs) and
by reverse mode (m VJPs): passes, time, and the measured time ratio next to
the predicted ratio n/m.

    python benchmarks/jacobian_modes.py
"""

from __future__ import annotations

import datetime

import numpy as np

from _timing import machine, median_ms, table
from backproplab import tape
from backproplab.tape import ops

SHAPES = [(1, 100), (10, 100), (100, 100), (100, 10), (100, 1)]
WIDTH, DEPTH = 64, 4


def make_f(n: int, m: int, rng: np.random.Generator):
    sizes = [n] + [WIDTH] * DEPTH + [m]
    params = [(rng.standard_normal((o, i)) / np.sqrt(i), np.zeros(o))
              for i, o in zip(sizes[:-1], sizes[1:], strict=True)]

    def f(x):
        a = ops.reshape(x, (1, n))
        for k, (W, b) in enumerate(params):
            a = ops.dense(a, W, b)
            a = ops.tanh(a) if k < len(params) - 1 else a
        return ops.reshape(a, (m,))

    return f


def main() -> None:
    rows = []
    for n, m in SHAPES:
        f = make_f(n, m, np.random.default_rng(0))
        x = np.random.default_rng(1).standard_normal(n)
        fwd, rev = tape.jacfwd(f), tape.jacrev(f)
        np.testing.assert_allclose(fwd(x), rev(x), rtol=1e-10, atol=1e-12)
        ms = median_ms({"fwd": lambda f=fwd, x=x: f(x), "rev": lambda r=rev, x=x: r(x)},
                       repeats=7)
        rows.append([f"{n}/{m}", n, m, ms["fwd"], ms["rev"],
                     f"{ms['fwd'] / ms['rev']:.3g}", f"{n / m:.3g}"])
    print(f"# jacobian_modes — {datetime.date.today()} — {machine()}; MLP depth {DEPTH}, "
          f"width {WIDTH}, float64")
    print(table(["n/m", "fwd passes (n)", "rev passes (m)", "fwd ms", "rev ms",
                 "fwd/rev measured", "n/m predicted"], rows))


if __name__ == "__main__":
    main()
