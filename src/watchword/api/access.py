"""The one authorization dependency of every RBAC administration endpoint.

A superuser principal (a bootstrap admin key) passes. Anyone else is resolved into the
same compiled subject the ACL document uses, from the principal's (issuer, subject), its
verified claims (``Principal.claims``), and its token scope; each request
is then checked by the engine for (``watchword:<type>``, action, object with its
organization and project).

A caller who may not read a thing gets 404, not 403: 403 only when it may read the thing
but not do the action. Lists are filtered in SQL by the engine's prepared residual, so a
page holds only visible rows and pagination stays exact.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy import ColumnElement, String, null
from sqlalchemy import cast as sql_cast

from watchword.api.deps import PrincipalDep, ServicesDep
from watchword.authz.compile import CompiledSubject
from watchword.authz.model import Object, TokenScope
from watchword.authz.sql import NO_ACL, ColumnMapping, SqlColumn
from watchword.errors import NotFound, PermissionDenied
from watchword.principal import Principal
from watchword.rbac.catalogue import type_name
from watchword.rbac.service import RbacService
from watchword.rbac.store.context import StoreContext
from watchword.rbac.store.organizations import get_organization

__all__ = ["Access", "AccessDep", "get_access", "principal_scope"]


def principal_scope(principal: Principal) -> TokenScope | None:
    return None if principal.scopes is None else TokenScope(frozenset(principal.scopes))


class Access:
    """What the caller may do, asked of the engine."""

    def __init__(self, rbac: RbacService, principal: Principal) -> None:
        self.principal = principal
        self.service = rbac
        self.ctx: StoreContext = rbac.ctx
        self._compiled: CompiledSubject | None = None

    @property
    def superuser(self) -> bool:
        return self.principal.superuser

    async def compiled(self) -> CompiledSubject:
        if self._compiled is None:
            p = self.principal
            if p.issuer is None or p.subject is None:
                raise PermissionDenied("this credential names no subject to authorize")
            self._compiled = await self.service.compiled_for(
                p.issuer, p.subject, p.claims, scope=principal_scope(p)
            )
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
        return self.service.policy_engine.check(compiled, action, obj).allowed

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
        prepared = self.service.policy_engine.prepare(compiled, "read", type_name(kind))
        nothing: SqlColumn = sql_cast(null(), String())
        mapping = ColumnMapping(
            id=id,
            org_id=org_id if org_id is not None else nothing,
            project_id=project_id if project_id is not None else nothing,
            owner=nothing,
            acl=NO_ACL,
        )
        return [prepared.to_sql(mapping)]


async def get_access(services: ServicesDep, principal: PrincipalDep) -> Access:
    return Access(services.rbac, principal)


AccessDep = Annotated[Access, Depends(get_access)]
