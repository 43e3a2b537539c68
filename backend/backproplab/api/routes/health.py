"""Liveness."""

from fastapi import APIRouter
from pydantic import BaseModel

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


@router.get("/api/health", response_model=Health)
async def health() -> Health:
    """Always answers quickly: the event loop never runs training."""
    return Health(status="ok")
