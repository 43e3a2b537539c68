"""backproplab.tape — a NumPy tape for automatic differentiation.

Reverse mode (grad, vjp, jacrev), forward mode (jvp, jacfwd), their
compositions (hessian, grad of grad), gradient checkpointing, and a stepper
that walks the backward pass one node at a time.
"""

from . import ops
from .checkpoint import checkpoint, checkpoint_sequential
from .core import (
    MissingRuleError,
    Primitive,
    defjvp,
    defvjp,
    meter,
    metering,
    primal_value,
    tap,
    tapping,
)
from .inspect import RecordedTape
from .operators import install_operators
from .optim import accumulate_gradients, clip_by_global_norm, global_norm, split_batch
from .transforms import (
    grad,
    hessian,
    jacfwd,
    jacrev,
    jvp,
    tree_flatten,
    tree_map,
    tree_unflatten,
    value_and_grad,
    value_and_grad_with_taps,
    vjp,
)

install_operators()  # once: x + y, x @ W, x[i], x.T on tracers apply ops' primitives

__all__ = [
    "MissingRuleError", "Primitive", "RecordedTape", "accumulate_gradients", "checkpoint",
    "checkpoint_sequential", "clip_by_global_norm", "defjvp", "defvjp", "global_norm", "grad",
    "hessian", "jacfwd", "jacrev", "jvp", "meter", "metering", "ops", "primal_value",
    "split_batch", "tap", "tapping", "tree_flatten", "tree_map", "tree_unflatten",
    "value_and_grad", "value_and_grad_with_taps", "vjp",
]
