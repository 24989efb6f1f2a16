"""Authorization questions over HTTP (``/v1/authz``) for services that are not in Python.

The subject is either given inline (an authz subject document: roles per level, groups,
scope) or referenced by identity (``subject_ref``: issuer, id and optionally verified claims),
in which case watchword resolves it from its RBAC data exactly as ``/v1/acl`` does. The
policy (resource types and roles) is always the stored, active one.

Every answer carries ``X-Watchword-Policy-Generation``: the RBAC generation (bumped by every
change to resource types, roles, groups, bindings, accounts or issuers) read before the
question was answered, so the answer reflects that generation or a later one. A caller that
caches answers (``watchword.client``) drops them when the value changes.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import Field, model_validator
from sqlalchemy import column, table
from sqlalchemy.sql.expression import ColumnClause, TableClause

from watchword.api.access import Access
from watchword.api.deps import BearerDep, ServicesDep, principal_of
from watchword.api.text import Line, PrintableModel
from watchword.authz import (
    NO_ACL,
    AclTable,
    ColumnMapping,
    CompiledSubject,
    JsonAcl,
    node_count,
    parse_object,
    render_sql,
    residual_to_dict,
)
from watchword.authz.sql import NoAcl
from watchword.errors import InvalidInput, PermissionDenied
from watchword.principal import Principal
from watchword.rbac.service import RbacService
from watchword.services import Services

router = APIRouter(prefix="/v1/authz", tags=["authz"])

MAX_BATCH = 1000
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
AUTHZ_RESOURCE = "watchword:authz"
POLICY_GENERATION_HEADER = "X-Watchword-Policy-Generation"
_GENERATION_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            POLICY_GENERATION_HEADER: {
                "description": "The RBAC policy generation read before answering (the answer "
                "reflects it or a later one); it changes whenever resource types, roles, "
                "groups, bindings, accounts or issuers change. Cached answers are dropped "
                "when it changes.",
                "schema": {"type": "integer"},
            }
        }
    }
}


class SubjectRef(PrintableModel):
    """A subject watchword resolves itself from its RBAC data."""

    issuer: Line = Field(min_length=1, max_length=500)
    id: Line = Field(min_length=1, max_length=500)
    claims: dict[str, Any] | None = Field(
        default=None, description="Verified userinfo/token claims (for the namespaced authz claim)."
    )


class Question(PrintableModel):
    action: str = Field(min_length=1, max_length=500)
    object: dict[str, Any] = Field(description="{type, id, org_id?, project_id?, owner?, acl?}")


class SubjectPart(PrintableModel):
    subject: dict[str, Any] | None = Field(
        default=None, description="An inline authz subject document (see docs/authz.md)."
    )
    subject_ref: SubjectRef | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> SubjectPart:
        if (self.subject is None) == (self.subject_ref is None):
            raise ValueError("give exactly one of 'subject' and 'subject_ref'")
        return self


class CheckRequest(SubjectPart):
    action: str | None = Field(default=None, min_length=1, max_length=500)
    object: dict[str, Any] | None = None
    batch: list[Question] | None = Field(
        default=None, max_length=MAX_BATCH, description=f"Up to {MAX_BATCH} questions."
    )

    @model_validator(mode="after")
    def _one_shape(self) -> CheckRequest:
        single = self.action is not None or self.object is not None
        if single == (self.batch is not None):
            raise ValueError("give either 'action' and 'object', or 'batch'")
        if single and (self.action is None or self.object is None):
            raise ValueError("'action' and 'object' go together")
        return self


class ExplainRequest(SubjectPart):
    action: str = Field(min_length=1, max_length=500)
    object: dict[str, Any]


class JsonAclColumns(PrintableModel):
    kind: Literal["json"] = "json"
    users: Line | None = None
    groups: Line | None = None


class AclTableColumns(PrintableModel):
    kind: Literal["table"] = "table"
    table: Line
    object_id: Line = "object_id"
    key_kind: Line = Field(default="kind", description="Column holding 'user' or 'group'.")
    key: Line = "key"
    action: Line = "action"


class NoAclColumns(PrintableModel):
    kind: Literal["none"] = "none"


class SqlTarget(PrintableModel):
    """Where the object fields live in the caller's table."""

    dialect: Literal["postgresql", "sqlite"]
    table: Line
    columns: dict[Literal["id", "org_id", "project_id", "owner"], str] = Field(
        default_factory=lambda: {"id": "id"}  # type: ignore[arg-type]
    )
    acl: JsonAclColumns | AclTableColumns | NoAclColumns = Field(
        default_factory=NoAclColumns, discriminator="kind"
    )
    paramstyle: Literal["named", "pyformat", "qmark", "numeric_dollar"] = "named"
    issuer: Line | None = Field(
        default=None,
        description=(
            "The owner column and the user ACL hold the user ids of this issuer (the "
            "application's own user ids) instead of subject keys 'issuer|id'."
        ),
    )


class FilterRequest(SubjectPart):
    action: str = Field(min_length=1, max_length=500)
    type: str = Field(min_length=1, max_length=500)
    objects: list[dict[str, Any]] | None = Field(
        default=None, max_length=10_000, description="Objects to filter (optional)."
    )
    sql: SqlTarget | None = None


async def ask(
    request: Request,
    services: Services,
    credentials: HTTPAuthorizationCredentials | None = None,
) -> Principal:
    """Asking questions about arbitrary subjects is an administrative power: an
    administrator, or a subject granted ``watchword:authz`` ``check`` (e.g. the seeded
    ``authz-client`` role)."""
    access = Access(services.rbac, await principal_of(request, services, credentials))
    if not await access.allowed("authz", "check", "*"):
        raise PermissionDenied(f"asking authorization questions needs {AUTHZ_RESOURCE} check")
    return access.principal


async def asker(request: Request, services: ServicesDep, credentials: BearerDep) -> Principal:
    return await ask(request, services, credentials)


async def asker_on_hot_path(request: Request) -> Principal:
    """:func:`asker` as one dependency node with nothing injected below it (each node costs
    per request; benchmarks/edge). A dependency, so the caller is authenticated before the
    body is validated: 401 before 422, and no stranger's batch is parsed."""
    return await ask(request, request.app.state.services)


AskerDep = Annotated[Principal, Depends(asker)]


async def _stamp(response: Response, rbac: RbacService) -> None:
    """Set the generation header; read before the subject is compiled, so the answer is at
    this generation or a later one (never an earlier one)."""
    response.headers[POLICY_GENERATION_HEADER] = str(await rbac.generation())


async def _compile(rbac: RbacService, part: SubjectPart) -> CompiledSubject:
    if part.subject is not None:
        return await rbac.compile_subject_document(part.subject, pointer="/subject")
    ref = part.subject_ref
    assert ref is not None  # noqa: S101 - guaranteed by SubjectPart's validator
    return await rbac.compiled_for(ref.issuer, ref.id, ref.claims)


@router.post(
    "/check",
    summary="Is the subject allowed? One question or a batch of up to 1,000",
    openapi_extra={"security": [{"HTTPBearer": []}]},  # as the injected credential says
    responses=_GENERATION_DOC,
)
async def check(
    request: Request,
    response: Response,
    body: CheckRequest,
    _: Annotated[Principal, Depends(asker_on_hot_path)],
) -> dict[str, Any]:
    # The decision hot path: services are read, not injected (benchmarks/edge).
    services: Services = request.app.state.services
    await _stamp(response, services.rbac)
    compiled = await _compile(services.rbac, body)
    policy_engine = services.policy_engine
    if body.batch is None:
        assert body.action is not None  # noqa: S101 - guaranteed by CheckRequest's validator
        assert body.object is not None  # noqa: S101
        return policy_engine.check(
            compiled, body.action, parse_object(body.object, "/object")
        ).to_dict()
    results = [
        policy_engine.check(
            compiled, q.action, parse_object(q.object, f"/batch/{i}/object")
        ).to_dict()
        for i, q in enumerate(body.batch)
    ]
    return {"results": results}


@router.post(
    "/explain",
    summary="Why was this allowed or denied? Every level's verdict",
    responses=_GENERATION_DOC,
)
async def explain(
    body: ExplainRequest, response: Response, services: ServicesDep, _: AskerDep
) -> dict[str, Any]:
    await _stamp(response, services.rbac)
    compiled = await _compile(services.rbac, body)
    policy_engine = services.policy_engine
    explanation = policy_engine.explain(compiled, body.action, parse_object(body.object, "/object"))
    return {**explanation.to_dict(), "text": explanation.to_text()}


def _ident(name: str, pointer: str) -> str:
    if not _IDENT.match(name):
        raise InvalidInput(f"{name!r} is not a plain SQL identifier", pointer=pointer)
    return name


def _mapping(target: SqlTarget) -> tuple[TableClause, ColumnMapping]:
    cols: dict[str, ColumnClause[Any]] = {
        field: column(_ident(name, f"/sql/columns/{field}"))
        for field, name in target.columns.items()
    }
    acl: JsonAcl | AclTable | NoAcl
    extra: list[ColumnClause[Any]] = []
    if isinstance(target.acl, JsonAclColumns):
        users: ColumnClause[Any] | None = None
        groups: ColumnClause[Any] | None = None
        if target.acl.users:
            users = column(_ident(target.acl.users, "/sql/acl/users"))
        if target.acl.groups:
            groups = column(_ident(target.acl.groups, "/sql/acl/groups"))
        extra = [c for c in (users, groups) if c is not None]
        acl = JsonAcl(users=users, groups=groups)
    elif isinstance(target.acl, AclTableColumns):
        a = target.acl
        acl_cols: dict[str, ColumnClause[Any]] = {
            n: column(_ident(getattr(a, n), f"/sql/acl/{n}"))
            for n in ("object_id", "key_kind", "key", "action")
        }
        acl_table = table(_ident(a.table, "/sql/acl/table"), *acl_cols.values())
        acl = AclTable(
            table=acl_table,
            object_id=acl_table.c[a.object_id],
            kind=acl_table.c[a.key_kind],
            key=acl_table.c[a.key],
            action=acl_table.c[a.action],
        )
    else:
        acl = NO_ACL
    main = table(_ident(target.table, "/sql/table"), *cols.values(), *extra)
    mapping = ColumnMapping(
        id=main.c[cols["id"].name] if "id" in cols else None,
        org_id=main.c[cols["org_id"].name] if "org_id" in cols else None,
        project_id=main.c[cols["project_id"].name] if "project_id" in cols else None,
        owner=main.c[cols["owner"].name] if "owner" in cols else None,
        acl=acl,
        issuer=_issuer(target.issuer),
    )
    return main, mapping


def _issuer(value: str | None) -> str | None:
    if value is not None and (not value or "|" in value):
        raise InvalidInput("an issuer must not be empty nor contain '|'", pointer="/sql/issuer")
    return value


@router.post(
    "/filter",
    summary="Which objects of a type may the subject act on? A residual predicate, and SQL",
    responses=_GENERATION_DOC,
)
async def filter_(
    body: FilterRequest, response: Response, services: ServicesDep, _: AskerDep
) -> dict[str, Any]:
    await _stamp(response, services.rbac)
    compiled = await _compile(services.rbac, body)
    policy_engine = services.policy_engine
    prepared = policy_engine.prepare(compiled, body.action, body.type)
    out: dict[str, Any] = {
        "type": body.type,
        "action": body.action,
        "residual": residual_to_dict(prepared.residual),
        "node_count": node_count(prepared.residual),
    }
    if body.objects is not None:
        objects = [parse_object(o, f"/objects/{i}") for i, o in enumerate(body.objects)]
        for i, obj in enumerate(objects):
            if obj.type != body.type:
                raise InvalidInput(
                    f"object type {obj.type!r} is not the filtered type {body.type!r}",
                    pointer=f"/objects/{i}/type",
                )
        out["allowed_ids"] = [o.id for o in prepared.filter(objects)]
    if body.sql is not None:
        mapping = _mapping(body.sql)[1]
        rendered = render_sql(prepared.to_sql(mapping), body.sql.dialect, body.sql.paramstyle)
        out["sql"] = {"dialect": body.sql.dialect, **rendered.to_dict()}
    return out
