"""Compiled vs eager: what XLA does to this network's training step, measured."""

from fastapi import APIRouter, HTTPException, Request

from ...engines.compiled import analyze
from ...engines.jax_engine import compile_key, jax_available
from ..deps import MeasurementsDep, SettingsDep, run_config
from ..measuring import MEASUREMENT_ANSWERS
from ..models import CompileReport
from .theory import config_query_parameters

router = APIRouter(tags=["compile"])

MAX_WORK = 1e10  # depth·width²·batch: the op-by-op step is timed too


@router.get("/api/compile", response_model=CompileReport,
            openapi_extra={"parameters": config_query_parameters()},
            responses={422: {"description": "an invalid config field, a dtype XLA is not "
                                            "asked for here, a network too large, or no jax"},
                       **MEASUREMENT_ANSWERS})
async def compile_report(request: Request, settings: SettingsDep,
                         measurements: MeasurementsDep) -> CompileReport:
    """The JAX step of this config (query: any RunConfig field) compiled and timed:
    jaxpr equations, HLO instructions before/after optimization, fusions, bytes
    accessed, compile time, step time jitted and op by op, torch's eager step.
    Measured once per network (runs differing in seed or learning rate share it), one
    network at a time."""
    if not jax_available():
        raise HTTPException(422, "the compiled view needs JAX, which is not installed here")
    query = {**request.query_params, "engine": "jax", "device": "cpu"}
    if query.get("dtype", "float32") not in ("float32", "float64"):
        raise HTTPException(422, f"the compiled view runs float32 or float64, "
                                 f"not {query['dtype']}")
    spec = run_config(query, settings, loc="query").to_spec()
    work = spec.depth * spec.width**2 * spec.batch_size
    if work > MAX_WORK:
        raise HTTPException(422, f"network too large to time op by op: depth·width²·batch = "
                                 f"{work:.3g} > {MAX_WORK:.3g}")
    key = compile_key(spec)
    return await measurements["compile"].run(
        request, key, lambda check: CompileReport(**analyze(key, check=check)))
