"""RBAC administration: organizations, projects, groups, service and system accounts,
role bindings, issuers (the routers live in :mod:`watchword.rbac.routes`)."""

from __future__ import annotations

from fastapi import APIRouter

from watchword.rbac.routes import accounts, groups, organizations

router = APIRouter()
router.include_router(organizations.router)
router.include_router(groups.router)
router.include_router(accounts.router)
