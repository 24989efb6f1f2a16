"""Role administration (``/v1/roles``)."""

from __future__ import annotations

from watchword.rbac.routes.policy import roles_router as router

__all__ = ["router"]
