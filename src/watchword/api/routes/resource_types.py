"""Resource type administration (``/v1/resource-types``)."""

from __future__ import annotations

from watchword.rbac.routes.policy import types_router as router

__all__ = ["router"]
