"""Versions, engines, devices, limits; and the RunConfig schema for the controls."""

import importlib.metadata
import importlib.util
import platform

import numpy as np
from fastapi import APIRouter

from ... import __version__
from ...model.spec import CLASSES, RunSpec
from ..deps import SettingsDep
from ..models import ConfigSchema, Info
from ..schemas import RunConfig

router = APIRouter(tags=["info"])


def _torch_info() -> tuple[str | None, list[str]]:
    try:
        import torch
    except ImportError:
        return None, []
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []
    return torch.__version__, names


def _jax_version() -> str | None:
    """Without importing jax (a second, on first import)."""
    if importlib.util.find_spec("jax") is None or importlib.util.find_spec("jaxlib") is None:
        return None
    return importlib.metadata.version("jax")


@router.get("/api/info", response_model=Info)
async def info(settings: SettingsDep) -> Info:
    """What this server can run, and its limits."""
    torch_version, cuda = _torch_info()
    jax_version = _jax_version()
    dtypes = {"numpy": ["float32", "float64"]}  # NumPy has no bfloat16; TF32 is a GPU mode
    if torch_version:
        dtypes["torch"] = ["float32", "float64", "bfloat16"] + (["tf32"] if cuda else [])
    if jax_version:
        dtypes["jax"] = ["float32", "float64"]
    return Info(version=__version__, python=platform.python_version(), numpy=np.__version__,
                torch=torch_version, jax=jax_version, engines=list(dtypes), dtypes=dtypes,
                devices=["cpu"] + (["cuda"] if cuda else []), cuda_devices=cuda,
                limits=settings.model_dump(),
                input_features={name: RunSpec(dataset=name).in_features for name in CLASSES
                                if name != "gaussian"})


@router.get("/api/schema/config", response_model=ConfigSchema)
async def config_schema() -> ConfigSchema:
    """The RunConfig JSON schema: choices, bounds and defaults for every control."""
    return ConfigSchema(RunConfig.model_json_schema())
