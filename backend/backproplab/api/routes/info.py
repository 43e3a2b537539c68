"""Versions, engines, devices, limits; and the RunConfig schema for the controls."""

import importlib.metadata
import importlib.util
import platform

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel

from ... import __version__
from ..schemas import RunConfig

router = APIRouter(tags=["info"])


class Info(BaseModel):
    version: str
    python: str
    numpy: str
    torch: str | None
    jax: str | None
    engines: list[str]
    devices: list[str]
    cuda_devices: list[str]
    limits: dict[str, float | int | str | list[str]]


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
async def info(request: Request) -> Info:
    """What this server can run, and its limits."""
    torch_version, cuda = _torch_info()
    jax_version = _jax_version()
    settings = request.app.state.settings
    engines = ["numpy"] + (["torch"] if torch_version else []) + (["jax"] if jax_version else [])
    return Info(version=__version__, python=platform.python_version(), numpy=np.__version__,
                torch=torch_version, jax=jax_version, engines=engines,
                devices=["cpu"] + (["cuda"] if cuda else []), cuda_devices=cuda,
                limits=settings.model_dump())


@router.get("/api/schema/config")
async def config_schema() -> dict:
    """The RunConfig JSON schema: choices, bounds and defaults for every control."""
    return RunConfig.model_json_schema()
