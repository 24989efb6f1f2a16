"""What the client sends and gets back: frozen dataclasses, parsed from the wire JSON.

The server's own models live in ``watchword.api`` (FastAPI, pydantic); the client does not
import them (see the import-linter contracts in ``pyproject.toml``), so these mirror the wire
shapes documented in ``docs/authz.md``, ``docs/tokens.md`` and ``docs/rbac.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

from watchword.secret import Secret

__all__ = [
    "AclDocument",
    "AclEndpoint",
    "AclGroup",
    "AclSubject",
    "CreatedToken",
    "Decision",
    "ExplainMatch",
    "Explanation",
    "FilterResult",
    "Introspection",
    "ObjectLike",
    "OrganizationAcl",
    "PermissionInfo",
    "ProjectAcl",
    "Question",
    "Resource",
    "ScopeReport",
    "SqlFragment",
    "StageReport",
    "SubjectLike",
    "SubjectRef",
    "Token",
    "TokenPage",
]

Json = dict[str, Any]


# Inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubjectRef:
    """A subject watchword resolves from its own RBAC data (``subject_ref`` on the wire):
    its issuer, its id and, optionally, verified claims (for the namespaced authz claim)."""

    issuer: str
    id: str
    claims: Mapping[str, Any] | None = None

    def to_json(self) -> Json:
        out: Json = {"issuer": self.issuer, "id": self.id}
        if self.claims is not None:
            out["claims"] = dict(self.claims)
        return out


# An inline subject document (docs/authz.md: global_roles, organizations, projects, groups,
# account_type, scope, issuer, id) or a reference the server resolves.
SubjectLike = Mapping[str, Any] | SubjectRef


@dataclass(frozen=True, slots=True)
class Resource:
    """The object of a question: ``{type, id, org_id?, project_id?, owner?, acl?}``.

    ``owner`` is a subject key (``"<issuer>|<id>"``); ``acl_users`` maps subject keys and
    ``acl_groups`` group ids to the actions they are granted on this object (``*`` for all).
    A plain mapping in that wire shape is accepted wherever a ``Resource`` is.
    """

    type: str
    id: str
    org_id: str | None = None
    project_id: str | None = None
    owner: str | None = None
    acl_users: Mapping[str, Sequence[str]] | None = None
    acl_groups: Mapping[str, Sequence[str]] | None = None

    def to_json(self) -> Json:
        out: Json = {"type": self.type, "id": self.id}
        for name in ("org_id", "project_id", "owner"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        acl: Json = {}
        if self.acl_users is not None:
            acl["users"] = {k: list(v) for k, v in self.acl_users.items()}
        if self.acl_groups is not None:
            acl["groups"] = {k: list(v) for k, v in self.acl_groups.items()}
        if acl:
            out["acl"] = acl
        return out


ObjectLike = Resource | Mapping[str, Any]


class Question(NamedTuple):
    """One question of a batch: ``(action, object)``; a plain tuple works too."""

    action: str
    object: ObjectLike


def object_json(obj: ObjectLike) -> Json:
    return obj.to_json() if isinstance(obj, Resource) else dict(obj)


def subject_json(subject: SubjectLike) -> Json:
    """The subject part of a request body: ``{"subject": …}`` or ``{"subject_ref": …}``."""
    if isinstance(subject, SubjectRef):
        return {"subject_ref": subject.to_json()}
    return {"subject": dict(subject)}


# Small readers of the wire JSON --------------------------------------------------------------


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else str(value)


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return None if value is None else int(value)


def _opt_bool(data: Mapping[str, Any], key: str) -> bool | None:
    value = data.get(key)
    return None if value is None else bool(value)


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in (value or ()))


def _when(data: Mapping[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    return None if value is None else datetime.fromisoformat(str(value))


# Authorization -----------------------------------------------------------------------------

DecidedBy = Literal["global", "organization", "project", "owner", "acl", "nothing"]


@dataclass(frozen=True, slots=True)
class PermissionInfo:
    """A role's permission that decided (or matched): ``effect`` on ``resource_type``'s
    ``actions``."""

    resource_type: str
    actions: tuple[str, ...]
    effect: Literal["allow", "deny"]

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> PermissionInfo | None:
        if data is None:
            return None
        actions = _strs(data.get("actions"))
        if data.get("effect") == "deny":
            return cls(str(data["resource_type"]), actions, "deny")
        return cls(str(data["resource_type"]), actions, "allow")


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one question.

    ``decided_by`` names the level of the walk that decided (``nothing``: every level
    abstained, the default deny); ``role``/``permission`` what decided at a role level;
    ``acl_entry`` (``user:<key>`` or ``group:<id>``) when the object's ACL allowed;
    ``scope_allowed`` is ``None`` when the token scope was not consulted.

    ``bool(decision)`` is ``decision.allowed``, so ``if client.check(...):`` reads right.
    """

    allowed: bool
    decided_by: str
    role: str | None = None
    permission: PermissionInfo | None = None
    acl_entry: str | None = None
    scope_allowed: bool | None = None

    def __bool__(self) -> bool:
        return self.allowed

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Decision:
        return cls(
            allowed=bool(data["allowed"]),
            decided_by=str(data["decided_by"]),
            role=_opt_str(data, "role"),
            permission=PermissionInfo.from_json(data.get("permission")),
            acl_entry=_opt_str(data, "acl_entry"),
            scope_allowed=_opt_bool(data, "scope_allowed"),
        )


@dataclass(frozen=True, slots=True)
class ExplainMatch:
    """A permission (or an ACL entry: ``role`` is ``None``) that matched the question."""

    source: str
    role: str | None
    permission: PermissionInfo | None


@dataclass(frozen=True, slots=True)
class StageReport:
    """One level of the walk: its verdict (``allow``, ``deny``, ``abstain``,
    ``not_reached``), what matched there, and a note."""

    stage: str
    verdict: str
    matches: tuple[ExplainMatch, ...]
    note: str


@dataclass(frozen=True, slots=True)
class ScopeReport:
    present: bool
    names_allowed: bool
    allow_list_allowed: bool
    allowed: bool


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a question was answered as it was: every level's verdict, and the text form."""

    subject: str
    action: str
    object_type: str
    object_id: str
    decision: Decision
    stages: tuple[StageReport, ...]
    scope: ScopeReport
    text: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Explanation:
        stages = tuple(
            StageReport(
                stage=str(s["stage"]),
                verdict=str(s["verdict"]),
                matches=tuple(
                    ExplainMatch(
                        source=str(m["source"]),
                        role=_opt_str(m, "role"),
                        permission=PermissionInfo.from_json(m.get("permission")),
                    )
                    for m in s.get("matches", ())
                ),
                note=str(s.get("note", "")),
            )
            for s in data.get("stages", ())
        )
        scope = data.get("scope") or {}
        obj = data.get("object") or {}
        return cls(
            subject=str(data["subject"]),
            action=str(data["action"]),
            object_type=str(obj.get("type", "")),
            object_id=str(obj.get("id", "")),
            decision=Decision.from_json(data["decision"]),
            stages=stages,
            scope=ScopeReport(
                present=bool(scope.get("present")),
                names_allowed=bool(scope.get("names_allowed")),
                allow_list_allowed=bool(scope.get("allow_list_allowed")),
                allowed=bool(scope.get("allowed")),
            ),
            text=str(data.get("text", "")),
        )


@dataclass(frozen=True, slots=True)
class SqlFragment:
    """A WHERE fragment selecting the rows the subject may act on, with its parameters
    (``param_order`` for positional paramstyles)."""

    dialect: str
    sql: str
    params: Mapping[str, Any]
    param_order: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FilterResult:
    """Which objects of ``type`` the subject may ``action``: the residual predicate
    (``docs/authz.md``), and, when asked for, the allowed ids among the given objects and
    the SQL form."""

    type: str
    action: str
    residual: Mapping[str, Any]
    node_count: int
    allowed_ids: tuple[str, ...] | None = None
    sql: SqlFragment | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FilterResult:
        sql = data.get("sql")
        ids = data.get("allowed_ids")
        return cls(
            type=str(data["type"]),
            action=str(data["action"]),
            residual=dict(data["residual"]),
            node_count=int(data["node_count"]),
            allowed_ids=None if ids is None else _strs(ids),
            sql=None
            if sql is None
            else SqlFragment(
                dialect=str(sql["dialect"]),
                sql=str(sql["sql"]),
                params=dict(sql.get("params") or {}),
                param_order=_strs(sql.get("param_order")),
            ),
        )


# Tokens ------------------------------------------------------------------------------------

TokenKindName = Literal["personal", "service_account", "integration"]


def _token_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    created = _when(data, "created_at")
    if created is None:
        raise ValueError("a token without created_at")
    return {
        "id": str(data["id"]),
        "kind": str(data["kind"]),
        "name": str(data["name"]),
        "owner_issuer": str(data["owner_issuer"]),
        "owner_subject": str(data["owner_subject"]),
        "organization_id": _opt_str(data, "organization_id"),
        "scopes": _strs(data.get("scopes")),
        "permission": str(data["permission"]),
        "prefix": str(data["prefix"]),
        "state": str(data["state"]),
        "created_at": created,
        "expires_at": _when(data, "expires_at"),
        "last_used_at": _when(data, "last_used_at"),
        "revoked_at": _when(data, "revoked_at"),
        "rotated_from": _opt_str(data, "rotated_from"),
    }


@dataclass(frozen=True, slots=True)
class Token:
    """An API token's record, never its secret (``prefix`` is its first characters)."""

    id: str
    kind: str
    name: str
    owner_issuer: str
    owner_subject: str
    organization_id: str | None
    scopes: tuple[str, ...]
    permission: str
    prefix: str
    state: str  # active, expired or revoked
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    rotated_from: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Token:
        return cls(**_token_fields(data))


@dataclass(frozen=True, slots=True)
class CreatedToken(Token):
    """A token just created or rotated, with its plaintext: shown once, kept in a
    :class:`~watchword.secret.Secret` (``token.reveal()``) so no repr or log shows it."""

    token: Secret = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CreatedToken:
        return cls(**_token_fields(data), token=Secret(str(data["token"])))


@dataclass(frozen=True, slots=True)
class TokenPage:
    items: tuple[Token, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenPage:
        return cls(
            items=tuple(Token.from_json(t) for t in data.get("items", ())),
            next_cursor=_opt_str(data, "next_cursor"),
        )


@dataclass(frozen=True, slots=True)
class Introspection:
    """An RFC 7662 answer. An inactive token (malformed, unknown, expired or revoked)
    answers ``active=False`` and nothing else."""

    active: bool
    scope: str | None = None
    client_id: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    sub: str | None = None
    iss: str | None = None
    organization_id: str | None = None
    permission: str | None = None
    kind: str | None = None

    def __bool__(self) -> bool:
        return self.active

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.scope.split()) if self.scope else ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Introspection:
        return cls(
            active=bool(data.get("active")),
            scope=_opt_str(data, "scope"),
            client_id=_opt_str(data, "client_id"),
            token_type=_opt_str(data, "token_type"),
            exp=_opt_int(data, "exp"),
            iat=_opt_int(data, "iat"),
            sub=_opt_str(data, "sub"),
            iss=_opt_str(data, "iss"),
            organization_id=_opt_str(data, "organization_id"),
            permission=_opt_str(data, "permission"),
            kind=_opt_str(data, "kind"),
        )


# ACL ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AclEndpoint:
    """The operations allowed on one resource type (``name``, e.g. ``compute:clusters``)."""

    name: str
    operations: tuple[str, ...]


def _endpoints(value: Any) -> tuple[AclEndpoint, ...]:
    return tuple(AclEndpoint(str(e["name"]), _strs(e.get("operations"))) for e in value or ())


@dataclass(frozen=True, slots=True)
class ProjectAcl:
    id: str
    endpoints: tuple[AclEndpoint, ...]


@dataclass(frozen=True, slots=True)
class OrganizationAcl:
    id: str
    endpoints: tuple[AclEndpoint, ...]  # decided at organization level
    owner: tuple[AclEndpoint, ...]  # on objects the subject owns there
    projects: tuple[ProjectAcl, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OrganizationAcl:
        return cls(
            id=str(data["id"]),
            endpoints=_endpoints(data.get("endpoints")),
            owner=_endpoints(data.get("owner")),
            projects=tuple(
                ProjectAcl(str(p["id"]), _endpoints(p.get("endpoints")))
                for p in data.get("projects") or ()
            ),
        )


@dataclass(frozen=True, slots=True)
class AclSubject:
    id: str
    issuer: str
    type: str  # user, service or system


@dataclass(frozen=True, slots=True)
class AclGroup:
    id: str
    organization_id: str


@dataclass(frozen=True, slots=True)
class AclDocument:
    """What a subject may do, by level (``docs/rbac.md``, "The ACL document"): effective
    allows only. Read it as a fall-through: an operation is allowed on an object in
    organization O and project P when ``global_endpoints``, O's ``endpoints`` or P's
    ``endpoints`` list it (objects it owns: O's ``owner``). A token scope's allow-list of
    specific ids is reported in ``scope`` for the caller to apply."""

    subject: AclSubject
    global_endpoints: tuple[AclEndpoint, ...]
    organizations: tuple[OrganizationAcl, ...]
    organization: OrganizationAcl | None
    projects: tuple[ProjectAcl, ...]
    groups: tuple[AclGroup, ...]
    scope: Mapping[str, Any] | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AclDocument:
        subject = data["subject"]
        scoped = data.get("organization")
        scope = data.get("scope")
        return cls(
            subject=AclSubject(str(subject["id"]), str(subject["issuer"]), str(subject["type"])),
            global_endpoints=_endpoints(data.get("global")),
            organizations=tuple(
                OrganizationAcl.from_json(o) for o in data.get("organizations") or ()
            ),
            organization=None if scoped is None else OrganizationAcl.from_json(scoped),
            projects=tuple(
                ProjectAcl(str(p["id"]), _endpoints(p.get("endpoints")))
                for p in data.get("projects") or ()
            ),
            groups=tuple(
                AclGroup(str(g["id"]), str(g["organizationId"])) for g in data.get("groups") or ()
            ),
            scope=None if scope is None else dict(scope),
        )
