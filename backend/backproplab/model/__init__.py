"""The network spec, its structure, deterministic initialization, data sets, and one
registry per idea: activations, norms, initializations."""

from .activations import ACTIVATION_NAMES, ACTIVATIONS, Activation
from .data import batch
from .init import INIT_NAMES, INITS, Init, effective_sigma_w2, init_params, init_weight
from .norms import LAYERNORM_EPS, NORM_NAMES, NORMS, Norm
from .spec import DATASETS, RecordSpec, RunSpec

__all__ = ["ACTIVATIONS", "ACTIVATION_NAMES", "Activation", "DATASETS", "INITS", "INIT_NAMES",
           "Init", "LAYERNORM_EPS", "NORMS", "NORM_NAMES", "Norm", "RecordSpec", "RunSpec",
           "batch", "effective_sigma_w2", "init_params", "init_weight"]
