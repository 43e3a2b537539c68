"""Liveness."""

from fastapi import APIRouter

from ..models import Health

router = APIRouter(tags=["health"])


@router.get("/api/health", response_model=Health)
async def health() -> Health:
    """Always answers quickly: the event loop never runs training."""
    return Health(status="ok")
