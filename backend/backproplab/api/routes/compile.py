"""Compiled vs eager: what XLA does to this network's training step, measured."""

import functools
import threading

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from ...engines.compiled import analyze
from ...engines.jax_engine import compile_key, jax_available
from ...model.spec import RunSpec
from .runs import _validate

router = APIRouter(tags=["compile"])

MAX_WORK = 1e10  # depth·width²·batch: the op-by-op step is timed too
_ONE_AT_A_TIME = threading.Lock()  # timings of two analyses at once would disturb each other


class ProgramStats(BaseModel):
    jaxpr_equations: int
    equations_executed: int
    hlo_before: int
    hlo_after: int
    fusions: int
    bytes_before: float
    bytes_after: float
    compile_s: float


class CompileReport(BaseModel):
    forward: ProgramStats
    step: ProgramStats
    compile_s: float
    jit_ms: float
    op_by_op_ms: float | None
    torch_ms: float | None
    jax: str
    device: str
    dtype: str
    summary: str


@functools.lru_cache(maxsize=16)
def _cached(key: RunSpec) -> dict:
    with _ONE_AT_A_TIME:
        return analyze(key)


@router.get("/api/compile", response_model=CompileReport)
def compile_report(request: Request) -> CompileReport:
    """The JAX step of this config (query: any RunConfig field) compiled and timed:
    jaxpr equations, HLO instructions before/after optimization, fusions, bytes
    accessed, compile time, step time jitted and op by op, torch's eager step."""
    if not jax_available():
        raise HTTPException(422, "the compiled view needs JAX, which is not installed here")
    query = {**request.query_params, "engine": "jax", "device": "cpu"}
    if query.get("dtype", "float32") not in ("float32", "float64"):
        raise HTTPException(422, f"the compiled view runs float32 or float64, "
                                 f"not {query['dtype']}")
    spec = _validate(query, request, loc="query").to_spec()
    work = spec.depth * spec.width**2 * spec.batch_size
    if work > MAX_WORK:
        raise HTTPException(422, f"network too large to time op by op: depth·width²·batch = "
                                 f"{work:.3g} > {MAX_WORK:.3g}")
    return CompileReport(**_cached(compile_key(spec)))
