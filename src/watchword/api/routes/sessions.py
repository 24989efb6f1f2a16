"""``GET /v1/me`` (who am I) and the administration of signed-in sessions (``/v1/sessions``).

Sessions are ``watchword:sessions`` objects to the policy engine: a global grant (a platform
administrator) reaches every session; an organization grant (``org-admin``) reaches the
sessions of that organization's members (the organizations a session's subject belonged to
at sign-in). No answer carries an upstream token or a cookie.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import AwareDatetime, BaseModel, Field

from watchword.api.access import AccessDep, principal_scope
from watchword.api.caching import NO_STORE
from watchword.api.deps import ServicesDep
from watchword.api.schemas import AclOut, PageLimit
from watchword.errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    SessionInvalid,
    UpstreamTokenNotExposed,
)
from watchword.principal import PrincipalKind
from watchword.sessions import SessionFilter, SessionRecord

__all__ = ["MeOut", "SessionOut", "router"]

router = APIRouter(dependencies=[NO_STORE])


class SessionOut(BaseModel):
    """A session, without its tokens."""

    id: str
    provider: str
    issuer: str
    subject: str
    email: str | None
    display_name: str | None
    organization_ids: list[str]
    signed_in_at: AwareDatetime
    last_seen_at: AwareDatetime
    expires_at: AwareDatetime = Field(description="The absolute end of the session.")
    idle_expires_at: AwareDatetime | None = Field(
        description="When it ends without activity (null: no idle timeout)."
    )
    access_token_expires_at: AwareDatetime | None
    refreshed_at: AwareDatetime | None
    version: int
    state: Literal["active", "reauth_required"] = Field(
        description="reauth_required: the upstream refresh token is dead; sign in again."
    )
    state_reason: str | None
    refresh_due_at: AwareDatetime | None = Field(
        description="When the refresher will next refresh the upstream access token."
    )
    refresh_failures: int = Field(description="Temporary failures in a row.")
    last_error: str | None = Field(description="The last refresh error (never a token).")
    last_error_at: AwareDatetime | None

    @classmethod
    def of(cls, record: SessionRecord, idle_timeout: timedelta) -> SessionOut:
        return cls(**record.public_view(idle_timeout))


class SessionDetail(SessionOut):
    claims: dict[str, Any] | None = Field(
        description="The claims snapshot (ID token and userinfo); null unless the caller has "
        "a global grant on watchword:sessions."
    )


class SessionPage(BaseModel):
    items: list[SessionOut]
    next_cursor: str | None


class SessionsEnded(BaseModel):
    ended: int


class MeSubject(BaseModel):
    issuer: str
    id: str


class MeOut(BaseModel):
    """The caller: subject, account type, credential, claims watchword keeps, ACL."""

    subject: MeSubject
    account_type: str
    credential: str = Field(description="session, token or admin_key.")
    claims: dict[str, Any]
    session: SessionOut | None
    acl: AclOut


@router.get(
    "/v1/me",
    tags=["sessions"],
    summary="Who am I: subject, account type, claims, session and ACL",
    response_model=MeOut,
    response_model_by_alias=True,
)
async def me(access: AccessDep, services: ServicesDep) -> MeOut:
    principal = access.principal
    if principal.issuer is None or principal.subject is None:
        raise InvalidInput(
            "this credential (a bootstrap admin key) has no subject; sign in or use a token"
        )
    document = await access.service.acl(
        principal.issuer, principal.subject, principal.claims, scope=principal_scope(principal)
    )
    session = None
    if principal.kind is PrincipalKind.SESSION:
        try:
            record = await services.sessions.get(principal.id)
        except NotFound:
            # Ended in another process since this one cached it (until the change feed, or
            # sessions.cache_ttl, drops it here): the caller's credential, not a resource,
            # is gone.
            services.sessions.forget([principal.id])
            raise SessionInvalid("the session has ended") from None
        session = SessionOut.of(record, services.sessions.idle_timeout)
    subject_doc = document.get("subject")
    account_type = subject_doc.get("type", "user") if isinstance(subject_doc, dict) else "user"
    return MeOut(
        subject=MeSubject(issuer=principal.issuer, id=principal.subject),
        account_type=str(account_type),
        credential=principal.kind.value,
        claims=dict(principal.claims),
        session=session,
        acl=AclOut.model_validate(document),
    )


class UpstreamTokenOut(BaseModel):
    """The signed-in session's upstream access token (fresh: refreshed first when inside
    the grace period)."""

    access_token: str
    token_type: str
    expires_at: AwareDatetime | None


@router.get(
    "/v1/me/token",
    tags=["sessions"],
    summary="The signed-in session's upstream access token (providers that opt in)",
    responses={
        400: {"description": "the credential is not a session"},
        403: {"description": "upstream_token_not_exposed"},
        503: {"description": "provider_unavailable: expired and cannot be refreshed now"},
    },
)
async def my_upstream_token(access: AccessDep, services: ServicesDep) -> UpstreamTokenOut:
    principal = access.principal
    if principal.kind is not PrincipalKind.SESSION:
        raise InvalidInput("only a signed-in session (the session cookie) has upstream tokens")
    record = await services.sessions.get(principal.id)
    client = services.signin.clients.get(record.provider)
    if client is None or not client.settings.expose_access_token:
        raise UpstreamTokenNotExposed(
            f"provider {record.provider!r} does not hand its access tokens out "
            "(oidc.providers[].expose_access_token)"
        )
    token = await services.refresher.access_token(record.id)
    return UpstreamTokenOut(
        access_token=token.token.reveal(),
        token_type=token.token_type,
        expires_at=token.expires_at,
    )


async def _readable(access: AccessDep, record: SessionRecord, action: str) -> bool:
    if await access.allowed("sessions", action, record.id):
        return True
    for org_id in record.organization_ids:
        if await access.allowed("sessions", action, record.id, org_id=org_id):
            return True
    return False


async def _require(access: AccessDep, record: SessionRecord, action: str) -> None:
    """404 when the caller may not read the session, 403 when it may read but not act."""
    if await _readable(access, record, action):
        return
    if action != "read" and await _readable(access, record, "read"):
        raise PermissionDenied(f"you may not {action} session {record.id!r}")
    raise NotFound(f"no session {record.id!r}")


async def _scope(access: AccessDep, organization_id: str | None, action: str) -> None:
    """Listing or ending many: a global grant, or one in the named organization."""
    if await access.allowed("sessions", action, ""):
        return
    if organization_id is not None and await access.allowed(
        "sessions", action, "", org_id=organization_id
    ):
        return
    raise PermissionDenied(
        f"you may not {action} sessions"
        + ("" if organization_id else " (an organization administrator names organization_id)")
    )


@router.get(
    "/v1/sessions",
    tags=["sessions"],
    summary="List signed-in sessions (filter by issuer, subject, provider, organization)",
)
async def list_sessions(
    access: AccessDep,
    services: ServicesDep,
    limit: PageLimit = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    issuer: Annotated[str | None, Query(max_length=500)] = None,
    subject: Annotated[str | None, Query(max_length=255)] = None,
    provider: Annotated[str | None, Query(max_length=32)] = None,
    organization_id: Annotated[str | None, Query(max_length=64)] = None,
) -> SessionPage:
    await _scope(access, organization_id, "read")
    page = await services.sessions.page(
        SessionFilter(
            issuer=issuer, subject=subject, provider=provider, organization_id=organization_id
        ),
        limit=limit,
        cursor=cursor,
    )
    return SessionPage(
        items=[SessionOut.of(r, services.sessions.idle_timeout) for r in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/v1/sessions/{session_id}", tags=["sessions"], summary="Read a session")
async def get_session(session_id: str, access: AccessDep, services: ServicesDep) -> SessionDetail:
    """With a global grant, the claims snapshot too; an organization's administrators get
    the session without it (the claims may tell of the person's other organizations)."""
    record = await services.sessions.get(session_id)
    await _require(access, record, "read")
    base = SessionOut.of(record, services.sessions.idle_timeout)
    global_reader = await access.allowed("sessions", "read", record.id)
    return SessionDetail(**base.model_dump(), claims=dict(record.claims) if global_reader else None)


@router.delete(
    "/v1/sessions/{session_id}",
    tags=["sessions"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End a session (sign it out)",
)
async def end_session(session_id: str, access: AccessDep, services: ServicesDep) -> Response:
    record = await services.sessions.get(session_id)
    await _require(access, record, "delete")
    await services.signin.end_sessions([record.id], reason="admin")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/v1/sessions",
    tags=["sessions"],
    summary="Sign a subject out everywhere (every session of issuer + subject)",
)
async def end_subject_sessions(
    access: AccessDep,
    services: ServicesDep,
    issuer: Annotated[str, Query(min_length=1, max_length=500)],
    subject: Annotated[str, Query(min_length=1, max_length=255)],
    organization_id: Annotated[str | None, Query(max_length=64)] = None,
) -> SessionsEnded:
    """With a global grant, every session of the subject; with an organization grant
    (``organization_id`` named), the subject's sessions in that organization."""
    await _scope(access, organization_id, "delete")
    global_grant = await access.allowed("sessions", "delete", "")
    ended = await services.signin.end_subject(
        issuer, subject, organization_id=None if global_grant else organization_id
    )
    return SessionsEnded(ended=ended)
