"""The handles every repository function needs: engine, clock, watchword's issuer URL."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.clock import Clock

__all__ = ["StoreContext"]


@dataclass(frozen=True, slots=True)
class StoreContext:
    engine: AsyncEngine
    clock: Clock
    issuer_url: str  # from settings, never from a request
