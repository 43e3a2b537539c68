"""The numeric layers (tape, model, engines, theory) run where only NumPy and
torch are installed: no web packages, no SciPy, no threadpoolctl."""

import subprocess
import sys

SCRIPT = r"""
import importlib.abc, sys
BLOCKED = {"fastapi", "starlette", "pydantic", "pydantic_core", "pydantic_settings",
           "uvicorn", "plotly", "orjson", "scipy", "threadpoolctl", "httpx"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
import numpy as np
from backproplab import tape
from backproplab.tape import ops
from backproplab.engines import iter_steps, theory_for
from backproplab.model import RunSpec
from backproplab.theory import phase
x = np.array([0.3, -1.2])
g = tape.grad(lambda v: ops.sum(ops.gelu(v)))(x)
import math
cdf = [0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x]
pdf = [math.exp(-v * v / 2) / math.sqrt(2 * math.pi) for v in x]
assert np.allclose(g, [c + v * p for c, v, p in zip(cdf, x, pdf)], rtol=1e-14)
for engine in ("numpy", "torch"):
    spec = RunSpec(engine=engine, activation="gelu", depth=3, width=8, steps=2)
    assert len(list(iter_steps(spec))) == 2
assert theory_for(RunSpec(activation="gelu"))["chi1"] > 0
phase.measured("tanh", np.array([1.0, 2.0]), np.array([0.0]), 3, 8, 4)
print("isolated ok")
"""


def test_numeric_layers_import_no_web_packages_and_need_no_scipy():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "isolated ok" in proc.stdout


LAYERS = r"""
import sys
import backproplab.{module}
loaded = sorted(m for m in sys.modules
                if m.split(".")[0] == "torch" or m.startswith(("backproplab.engines",
                                                               "backproplab.tape")))
print(loaded)
"""


def _loaded_by(module: str) -> str:
    proc = subprocess.run([sys.executable, "-c", LAYERS.format(module=module)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_theory_and_model_load_neither_the_engines_nor_the_tape_nor_torch():
    """theory imports model (and the array namespaces beneath it) only; the activation
    registry names the tape's primitives and torch's kernels without importing them."""
    assert _loaded_by("theory") == "[]"
    assert _loaded_by("model") == "[]"
    assert _loaded_by("xp") == "[]"
