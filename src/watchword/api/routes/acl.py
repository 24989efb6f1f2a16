"""ACL documents (``/v1/acl``, ``/v1/organizations/{id}/acl``, ``/v1/acl/query``)."""

from __future__ import annotations

from watchword.rbac.routes.acl import router

__all__ = ["router"]
