"""The network spec, deterministic initialization, activations and data sets."""

from .data import batch
from .init import effective_sigma_w2, init_params, init_weight
from .spec import ACTIVATIONS, DATASETS, INITS, RecordSpec, RunSpec, spec_from_dict

__all__ = ["ACTIVATIONS", "DATASETS", "INITS", "RecordSpec", "RunSpec", "batch",
           "effective_sigma_w2", "init_params", "init_weight", "spec_from_dict"]
