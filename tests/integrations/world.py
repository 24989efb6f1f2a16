"""What the integration tests share: a notes app protected by a ``Guard``, the watchword
data it is decided by, and the credentials of its callers.

The world is one migrated SQLite database with watchword's real services over it:

- the resource type ``notes:documents`` (create, read, update, delete) and two roles,
  ``doc-reader`` (read in its organization) and ``doc-writer`` (create, read, update);
- organizations ``acme`` and ``globex``; in acme, ``rita`` reads and ``will`` writes
  (watchword's own issuer), and the test IdP's alice (``alice-0001``) reads;
- a watchword server app (``create_app``) over the same services, which remote guards ask
  through ``watchword.client.AsyncClient`` with the token of ``notes-app`` (``authz-client``).

The notes app is what an application developer writes: a document dependency giving an
``Object``, and routes declaring ``guard.caller`` and ``guard.require``.
"""

# No postponed annotations: FastAPI reads the notes app's annotations (built in a function).
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI
from tests.oidc.plugin import DEFAULT_CLIENT_ID, OidcProvider
from tests.oidc.test_provider_fixture import authorization_request, redeem
from tests.support.seed import add_members, personal_token

from watchword.api.app import create_app
from watchword.authz import Object
from watchword.client import AsyncClient
from watchword.clock import FakeClock
from watchword.errors import NotFound
from watchword.integrations.fastapi import Caller, Guard
from watchword.rbac.store.accounts import create_binding
from watchword.rbac.store.organizations import create_organization
from watchword.rbac.store.roles import create_resource_type, create_role
from watchword.secret import Secret
from watchword.services import Services
from watchword.sessions.service import NewSession
from watchword.tokens.scope import Permission

__all__ = [
    "DOCS",
    "NOTES",
    "WATCHWORD",
    "World",
    "bearer",
    "id_token",
    "notes_app",
    "seed",
    "serve",
]

DOCS = "notes:documents"
NOTES = "http://notes.test"
WATCHWORD = "http://watchword.test"
DOCUMENTS = frozenset({"d1", "d2"})  # the notes app's documents, in every organization


def bearer(token: str | Secret) -> dict[str, str]:
    value = token.reveal() if isinstance(token, Secret) else token
    return {"Authorization": f"Bearer {value}"}


@dataclass
class World:
    services: Services
    clock: FakeClock
    acme: str
    globex: str
    tokens: dict[str, Secret]  # rita, will, will-ro, notes-app, outsider
    watchword: FastAPI  # the watchword server remote guards ask
    opened: list[AsyncClient] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return self.services.runtime.settings.issuer_url

    def client(self, credential: str | Secret | None = None) -> AsyncClient:
        """A client of the watchword server (closed with the world)."""
        transport = httpx.ASGITransport(app=self.watchword, raise_app_exceptions=False)
        made = AsyncClient(WATCHWORD, credential, transport=transport)
        self.opened.append(made)
        return made

    async def session_cookie(self, subject: str) -> Secret:
        """A signed-in session of (our issuer, ``subject``), as sign-in makes one."""
        _, cookie = await self.services.sessions.create(
            NewSession(
                provider="test",
                issuer=self.issuer,
                subject=subject,
                upstream_sid=None,
                email=f"{subject}@example.com",
                display_name=subject,
                claims={"sub": subject},
                organization_ids=[self.acme],
                access_token=Secret("upstream-access-token"),
                refresh_token=None,
                id_token=None,
                access_expires_at=self.clock.now() + timedelta(hours=1),
            )
        )
        return cookie

    async def aclose(self) -> None:
        for client in self.opened:
            await client.aclose()


async def seed(services: Services, clock: FakeClock) -> World:
    ctx = services.store
    await create_resource_type(ctx, name=DOCS, actions=["create", "read", "update", "delete"])
    await create_role(
        ctx,
        role_id="doc-reader",
        name="doc-reader",
        permissions={"organization": [{"resource_type": DOCS, "actions": ["read"]}]},
    )
    await create_role(
        ctx,
        role_id="doc-writer",
        name="doc-writer",
        permissions={
            "organization": [{"resource_type": DOCS, "actions": ["create", "read", "update"]}]
        },
    )
    acme = (await create_organization(ctx, name="acme")).id
    globex = (await create_organization(ctx, name="globex")).id
    iss = services.runtime.settings.issuer_url
    await add_members(ctx, acme, iss, ["rita", "sam"], roles=["doc-reader"], name="readers")
    await add_members(ctx, acme, iss, ["will"], roles=["doc-writer"], name="writers")
    await create_binding(ctx, issuer=iss, subject_id="notes-app", role_ids=["authz-client"])
    tokens = {
        name: (await personal_token(services, iss, subject, permission=permission)).token
        for name, subject, permission in (
            ("rita", "rita", Permission.READ_WRITE),
            ("will", "will", Permission.READ_WRITE),
            ("will-ro", "will", Permission.READ_ONLY),
            ("notes-app", "notes-app", Permission.READ_WRITE),
            ("outsider", "olga", Permission.READ_WRITE),
        )
    }
    return World(services, clock, acme, globex, tokens, create_app(services=services))


def notes_app(guard: Guard, *, validate: bool = True) -> FastAPI:
    """The application under test: documents in organizations, protected by ``guard``."""
    app = FastAPI()
    guard.install(app, validate=validate)

    async def document(org_id: str, doc_id: str) -> Object:
        if doc_id not in DOCUMENTS:
            raise NotFound(f"no document {doc_id!r}")
        return Object(DOCS, doc_id, org_id=org_id)

    async def mislabelled(org_id: str, doc_id: str) -> Object:
        return Object("notes:folders", doc_id, org_id=org_id)

    CallerDep = Annotated[Caller, Depends(guard.caller)]
    Reader = Annotated[Caller, Depends(guard.require(DOCS, "read", document))]

    @app.get("/me")
    async def me(caller: CallerDep) -> dict[str, Any]:
        return {
            "kind": caller.kind.value,
            "issuer": caller.issuer,
            "subject": caller.subject,
            "scopes": None if caller.scopes is None else sorted(caller.scopes),
        }

    @app.get("/orgs/{org_id}/documents/{doc_id}")
    async def read(org_id: str, doc_id: str, caller: Reader) -> dict[str, str]:
        return {"id": doc_id, "read_by": caller.subject}

    @app.put(
        "/orgs/{org_id}/documents/{doc_id}",
        dependencies=[Depends(guard.require(DOCS, "update", document))],
    )
    async def update(org_id: str, doc_id: str) -> dict[str, str]:
        return {"id": doc_id, "updated": "yes"}

    @app.post(
        "/orgs/{org_id}/documents",
        status_code=201,
        dependencies=[Depends(guard.require(DOCS, "create", org_param="org_id"))],
    )
    async def create(org_id: str) -> dict[str, str]:
        return {"created_in": org_id}

    @app.get(
        "/orgs/{org_id}/mislabelled/{doc_id}",
        dependencies=[Depends(guard.require(DOCS, "read", mislabelled))],
    )
    async def wrong_type(org_id: str, doc_id: str) -> dict[str, str]:
        return {"id": doc_id}

    return app


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` started (its lifespan: the guard validates) and a client talking to it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=NOTES) as client:
            yield client


async def id_token(
    provider: OidcProvider,
    *,
    login: str = "alice",
    client_id: str = DEFAULT_CLIENT_ID,
    scope: str = "openid profile email",
) -> str:
    """An ID token of ``login`` from ``provider``: the code flow with PKCE, as a relying
    party does it (the browser part done by the provider fixture's user agent)."""
    client = provider.clients[client_id]
    request = authorization_request(provider, client, scope=scope)
    back = await provider.authorize(request.url, login=login)
    token: str = (await redeem(provider, client, request, back))["id_token"]
    return token
