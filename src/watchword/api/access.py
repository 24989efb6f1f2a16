"""The one authorization dependency of every RBAC administration endpoint.

A superuser principal (a bootstrap admin key) passes. Anyone else is resolved into the
same compiled subject the ACL document uses, from the principal's (issuer, subject), its
verified claims when the authenticator provides them, and its token scope; each request
is then checked by the engine for (``watchword:<type>``, action, object with its
organization and project).

A caller who may not read a thing gets 404, not 403: 403 only when it may read the thing
but not do the action. Lists are filtered in SQL by the engine's prepared residual, so a
page holds only visible rows and pagination stays exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, cast

from fastapi import Depends
from sqlalchemy import ColumnElement, String, null
from sqlalchemy import cast as sql_cast

from watchword.api.deps import Principal, PrincipalDep, RuntimeDep
from watchword.authz.compile import CompiledSubject
from watchword.authz.model import Object, TokenScope
from watchword.authz.sql import NO_ACL, ColumnMapping, SqlColumn
from watchword.errors import NotFound, PermissionDenied
from watchword.rbac.catalogue import type_name
from watchword.rbac.service import RbacService, rbac_service
from watchword.rbac.store.context import StoreContext
from watchword.rbac.store.organizations import get_organization
from watchword.runtime import Runtime

__all__ = ["Access", "AccessDep", "get_access", "principal_claims", "principal_scope"]


def principal_claims(principal: Principal) -> Mapping[str, object]:
    """Verified claims the authenticator attached to the principal, if it does."""
    claims = getattr(principal, "claims", None)
    return cast("Mapping[str, object]", claims) if isinstance(claims, Mapping) else {}


def principal_scope(principal: Principal) -> TokenScope | None:
    return None if principal.scopes is None else TokenScope(frozenset(principal.scopes))


class Access:
    """What the caller may do, asked of the engine."""

    def __init__(self, runtime: Runtime, principal: Principal) -> None:
        self.runtime = runtime
        self.principal = principal
        self.service: RbacService = runtime.service(rbac_service)
        self.ctx: StoreContext = self.service.ctx
        self._compiled: CompiledSubject | None = None

    @property
    def superuser(self) -> bool:
        return self.principal.superuser

    async def compiled(self) -> CompiledSubject:
        if self._compiled is None:
            p = self.principal
            if p.issuer is None or p.subject is None:
                raise PermissionDenied("this credential names no subject to authorize")
            resolved = await self.service.resolve(
                p.issuer, p.subject, principal_claims(p), scope=principal_scope(p)
            )
            self._compiled = self.service.engine.refresh(resolved.compiled)
        return self._compiled

    async def allowed(
        self,
        kind: str,
        action: str,
        obj_id: str,
        *,
        org_id: str | None = None,
        project_id: str | None = None,
    ) -> bool:
        if self.superuser:
            return True
        compiled = await self.compiled()
        obj = Object(type_name(kind), obj_id, org_id=org_id, project_id=project_id)
        return self.service.engine.check(compiled, action, obj).allowed

    async def require(
        self,
        kind: str,
        action: str,
        obj_id: str,
        *,
        org_id: str | None = None,
        project_id: str | None = None,
        what: str | None = None,
    ) -> None:
        """Pass, or raise 404 (may not read) / 403 (may read, not ``action``)."""
        if await self.allowed(kind, action, obj_id, org_id=org_id, project_id=project_id):
            return
        if action != "read" and await self.allowed(
            kind, "read", obj_id, org_id=org_id, project_id=project_id
        ):
            raise PermissionDenied(f"you may not {action} {what or kind} {obj_id!r}")
        raise NotFound(f"{what or kind} {obj_id!r} does not exist")

    async def require_organization(self, org_id: str) -> None:
        """The organization exists and the caller may read it: 404 otherwise, the same answer
        either way, so listing inside an organization says nothing of one it may not see."""
        await get_organization(self.ctx, org_id)
        if not await self.allowed("organizations", "read", org_id, org_id=org_id):
            raise NotFound(f"organization {org_id!r} does not exist")

    async def require_create(self, kind: str, *, org_id: str | None = None) -> None:
        """Creating in an organization one may not even read is a 404 on the organization."""
        if await self.allowed(kind, "create", "", org_id=org_id):
            return
        if org_id is not None and not await self.allowed(
            "organizations", "read", org_id, org_id=org_id
        ):
            raise NotFound(f"organization {org_id!r} does not exist")
        raise PermissionDenied(f"you may not create {kind}")

    async def visible(
        self,
        kind: str,
        *,
        id: SqlColumn,
        org_id: SqlColumn | None = None,
        project_id: SqlColumn | None = None,
    ) -> list[ColumnElement[bool]]:
        """SQL conditions selecting the rows of ``kind`` the caller may read."""
        if self.superuser:
            return []
        compiled = await self.compiled()
        prepared = self.service.engine.prepare(compiled, "read", type_name(kind))
        nothing: SqlColumn = sql_cast(null(), String())
        mapping = ColumnMapping(
            id=id,
            org_id=org_id if org_id is not None else nothing,
            project_id=project_id if project_id is not None else nothing,
            owner=nothing,
            acl=NO_ACL,
        )
        return [prepared.to_sql(mapping)]


def get_access(runtime: RuntimeDep, principal: PrincipalDep) -> Access:
    return Access(runtime, principal)


AccessDep = Annotated[Access, Depends(get_access)]
