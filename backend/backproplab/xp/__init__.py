"""Array namespaces, the bottom layer of the numeric packages.

One vocabulary for NumPy and for torch (on any device), so activations, norms,
probes, the Jacobian and the optimizers are written once. The standard part
(elementwise math, reductions, stacking) is the Python Array API standard: NumPy's
from array-api-compat, torch's in torch's own calls (which measured faster on the
probe path). The rest (erf, sigmoid, softplus, overflow-safe norms, host
transfers, fused updates) is written here per library. Both namespaces are
instances of one base class: code asks a namespace what it can do
(`host_memory`), never which one it is.
"""

from .base import ArrayNamespace, norm_window, scaled_norm
from .numpy_xp import NUMPY, NumpyXP
from .torch_xp import TorchXP

__all__ = ["NUMPY", "ArrayNamespace", "NumpyXP", "TorchXP", "norm_window", "scaled_norm"]
