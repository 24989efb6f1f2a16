"""``watchword.integrations.fastapi`` protecting a FastAPI app, against real components.

Every test drives the notes app (``world.py``) over ASGI with real credentials: API tokens
made by the token service, sessions made by the session service, ID tokens from the test
OpenID provider (``tests/oidc``). Tests taking ``mode`` run twice, once with an embedded
guard (watchword's services in process) and once with a remote guard asking the watchword
server app over ``watchword.client.AsyncClient``; ``test_remote_answers_as_embedded`` puts
the two side by side on the same world.
"""

# No postponed annotations: FastAPI reads the annotations of the routes built in tests.
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import JSON, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from tests.integrations.world import (
    DOCS,
    World,
    bearer,
    id_token,
    notes_app,
    seed,
    serve,
)
from tests.oidc.plugin import DEFAULT_CLIENT_ID, OidcProvider, OidcProviderFactory

from watchword.api.deps import session_cookie_name
from watchword.authz import ObjectMapping, ObjectMappings
from watchword.bootstrap import create_admin_key
from watchword.client import Resource
from watchword.clock import FakeClock
from watchword.config import load_settings
from watchword.errors import ConfigurationError
from watchword.integrations import BearerIssuer, Caller, CallerKind
from watchword.integrations.fastapi import Guard
from watchword.rbac.model import GroupMember
from watchword.rbac.store.groups import create_group
from watchword.runtime import Runtime
from watchword.secret import Secret
from watchword.services import Services
from watchword.storage.migrate import upgrade_engine
from watchword.tokens.format import TokenKind, compose

PROBLEM = "application/problem+json"


@pytest.fixture
async def world(sqlite_engine: AsyncEngine) -> AsyncIterator[World]:
    await upgrade_engine(sqlite_engine)
    clock = FakeClock(datetime.now(UTC))  # real time: the test IdP's tokens carry it
    settings = load_settings(
        environ={},
        secret_key=secrets.token_urlsafe(32),
        oidc={"allow_insecure_http": True},  # the test IdP is http on loopback
    )
    services = Services.build(Runtime(settings=settings, engine=sqlite_engine, clock=clock))
    made = await seed(services, clock)
    try:
        yield made
    finally:
        await made.aclose()
        await services.aclose()


@pytest.fixture(params=["embedded", "remote"])
def mode(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


def guard_for(
    world: World,
    mode: str,
    *,
    issuers: Sequence[BearerIssuer] = (),
    app_credential: Secret | None = None,
    failed_limit: str = "60/minute",
) -> Guard:
    if mode == "embedded":
        return Guard.embedded(world.services, issuers=issuers)
    return Guard.remote(
        world.client(app_credential or world.tokens["notes-app"]),
        issuers=issuers,
        clock=world.clock,
        allow_insecure_http=True,
        failed_limit=failed_limit,
    )


@pytest.fixture
async def notes(world: World, mode: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(notes_app(guard_for(world, mode))) as client:
        yield client


def doc(org: str, doc_id: str = "d1") -> str:
    return f"/orgs/{org}/documents/{doc_id}"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status, body
    assert body["type"] == f"https://watchword.dev/problems/{code}"
    return body


# Authentication ------------------------------------------------------------------------


async def test_anonymous_is_401_problem_with_a_bearer_challenge_before_any_object_lookup(
    notes: httpx.AsyncClient, world: World
) -> None:
    for path in ("/me", doc(world.acme), doc(world.acme, "missing")):
        response = await notes.get(path)
        assert_problem(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_garbage_token_is_401_malformed_and_never_echoed(
    notes: httpx.AsyncClient, world: World
) -> None:
    garbage = "not-a-token-" + secrets.token_hex(8)
    response = await notes.get(doc(world.acme), headers=bearer(garbage))
    assert_problem(response, 401, "token_malformed")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert garbage not in response.text


async def test_an_unknown_or_revoked_token_is_401(
    notes: httpx.AsyncClient, world: World, mode: str
) -> None:
    unknown = compose(TokenKind.PERSONAL, "A" * 30)  # well-formed, never issued
    assert_problem(await notes.get("/me", headers=bearer(unknown)), 401, "token_unknown")
    rita = world.tokens["rita"]
    assert (await notes.get("/me", headers=bearer(rita))).status_code == 200
    record = await world.services.tokens.find_presented(rita)
    assert record is not None
    await world.services.tokens.revoke(record.id)
    # Introspection never says why a token is inactive (RFC 7662 2.2).
    expected = "token_revoked" if mode == "embedded" else "token_unknown"
    assert_problem(await notes.get("/me", headers=bearer(rita)), 401, expected)


async def test_watchwords_own_admin_keys_are_not_accepted_by_the_app(
    notes: httpx.AsyncClient, world: World
) -> None:
    _, key = await create_admin_key(world.services.runtime.engine, world.clock)
    assert_problem(await notes.get(doc(world.acme), headers=bearer(key)), 401, "token_malformed")


async def test_the_caller_names_the_tokens_owner_and_its_narrowed_scopes(
    notes: httpx.AsyncClient, world: World
) -> None:
    rw = (await notes.get("/me", headers=bearer(world.tokens["will"]))).json()
    assert rw == {"kind": "token", "issuer": world.issuer, "subject": "will", "scopes": ["*:*"]}
    ro = (await notes.get("/me", headers=bearer(world.tokens["will-ro"]))).json()
    assert ro["subject"] == "will" and ro["scopes"] == ["*:check", "*:read"]


# Authorization -------------------------------------------------------------------------


async def test_a_reader_reads_and_is_refused_the_write_and_other_organizations(
    notes: httpx.AsyncClient, world: World
) -> None:
    rita = bearer(world.tokens["rita"])
    read = await notes.get(doc(world.acme), headers=rita)
    assert read.status_code == 200 and read.json() == {"id": "d1", "read_by": "rita"}
    body = assert_problem(await notes.put(doc(world.acme), headers=rita), 403, "forbidden")
    assert "update" in body["detail"]
    assert_problem(await notes.get(doc(world.globex), headers=rita), 403, "forbidden")
    # The app's own errors from its object dependency keep watchword's shape too.
    assert_problem(await notes.get(doc(world.acme, "missing"), headers=rita), 404, "not_found")


async def test_create_is_decided_on_the_type_in_the_organization_of_the_path(
    notes: httpx.AsyncClient, world: World
) -> None:
    will, rita = bearer(world.tokens["will"]), bearer(world.tokens["rita"])
    made = await notes.post(f"/orgs/{world.acme}/documents", headers=will)
    assert made.status_code == 201 and made.json() == {"created_in": world.acme}
    assert_problem(
        await notes.post(f"/orgs/{world.globex}/documents", headers=will), 403, "forbidden"
    )
    assert_problem(
        await notes.post(f"/orgs/{world.acme}/documents", headers=rita), 403, "forbidden"
    )


async def test_a_read_only_token_of_a_writer_keeps_only_the_reads(
    notes: httpx.AsyncClient, world: World
) -> None:
    ro, rw = bearer(world.tokens["will-ro"]), bearer(world.tokens["will"])
    assert (await notes.get(doc(world.acme), headers=ro)).status_code == 200
    assert (await notes.put(doc(world.acme), headers=rw)).status_code == 200
    assert_problem(await notes.put(doc(world.acme), headers=ro), 403, "forbidden")
    assert_problem(await notes.post(f"/orgs/{world.acme}/documents", headers=ro), 403, "forbidden")


async def test_an_object_of_another_type_than_declared_is_a_500_never_a_check(
    notes: httpx.AsyncClient, world: World
) -> None:
    response = await notes.get(
        f"/orgs/{world.acme}/mislabelled/d1", headers=bearer(world.tokens["rita"])
    )
    body = assert_problem(response, 500, "config_invalid")
    assert "notes:folders" in body["detail"]


async def test_guard_allowed_answers_a_routes_own_questions(world: World, mode: str) -> None:
    guard = guard_for(world, mode)
    app = FastAPI()
    guard.install(app)

    @app.get("/visible")
    async def visible(caller: Annotated[Caller, Depends(guard.caller)]) -> list[str]:
        return [
            org
            for org in (world.acme, world.globex)
            if await guard.allowed(caller, "read", Resource(DOCS, "d1", org_id=org))
        ]

    async with serve(app) as client:
        seen = await client.get("/visible", headers=bearer(world.tokens["rita"]))
        assert seen.json() == [world.acme]
        outsider = await client.get("/visible", headers=bearer(world.tokens["outsider"]))
        assert outsider.json() == []


# Session cookie (embedded mode) --------------------------------------------------------


async def test_the_session_cookie_authenticates_and_guards_against_cross_site_writes(
    world: World,
) -> None:
    name = session_cookie_name(world.services)
    same_site = {"Origin": world.issuer}
    async with serve(notes_app(Guard.embedded(world.services))) as notes:
        sam = {"Cookie": f"{name}={(await world.session_cookie('sam')).reveal()}"}
        me = await notes.get("/me", headers=sam)
        assert me.json() == {
            "kind": "session",
            "issuer": world.issuer,
            "subject": "sam",
            "scopes": None,
        }
        assert (await notes.get(doc(world.acme), headers=sam)).status_code == 200
        assert_problem(await notes.put(doc(world.acme), headers=sam), 403, "csrf_origin_mismatch")
        refused = await notes.put(doc(world.acme), headers={**sam, **same_site})
        assert_problem(refused, 403, "forbidden")  # from this site: sam only reads

        will_cookie = await world.session_cookie("will")
        will = {"Cookie": f"{name}={will_cookie.reveal()}", **same_site}
        assert (await notes.put(doc(world.acme), headers=will)).status_code == 200
        session_id = will_cookie.reveal().partition(".")[0]
        await world.services.sessions.end(session_id, reason="signed_out")
        assert_problem(await notes.get("/me", headers=will), 401, "session_invalid")
        forged = {"Cookie": f"{name}={session_id}.{'x' * 43}"}
        assert_problem(await notes.get("/me", headers=forged), 401, "session_invalid")


async def test_remote_mode_refuses_session_cookies_at_construction_and_ignores_them(
    world: World,
) -> None:
    with pytest.raises(ConfigurationError, match="session cookies are not supported"):
        Guard.remote(world.client(world.tokens["notes-app"]), session_cookie=True)
    name = session_cookie_name(world.services)
    async with serve(notes_app(guard_for(world, "remote"))) as notes:
        cookie = {"Cookie": f"{name}={(await world.session_cookie('sam')).reveal()}"}
        assert_problem(await notes.get("/me", headers=cookie), 401, "unauthenticated")


# Bearer JWTs of a configured issuer ----------------------------------------------------


async def _idp_readers(world: World, provider: OidcProvider) -> None:
    """alice of the test IdP reads acme's documents (a group membership by issuer + sub)."""
    await create_group(
        world.services.store,
        organization_id=world.acme,
        name="idp-readers",
        members=[GroupMember(provider.issuer, "alice-0001")],
        role_ids=["doc-reader"],
    )


def idp(provider: OidcProvider, audience: str = DEFAULT_CLIENT_ID) -> BearerIssuer:
    return BearerIssuer(issuer=provider.issuer, audience=audience)


async def test_a_bearer_jwt_of_the_configured_issuer_is_a_caller_decided_by_rbac(
    world: World, mode: str, oidc_provider: OidcProvider
) -> None:
    await _idp_readers(world, oidc_provider)
    token = await id_token(oidc_provider)
    async with serve(notes_app(guard_for(world, mode, issuers=[idp(oidc_provider)]))) as notes:
        me = await notes.get("/me", headers=bearer(token))
        assert me.json() == {
            "kind": "jwt",
            "issuer": oidc_provider.issuer,
            "subject": "alice-0001",
            "scopes": None,
        }
        assert (await notes.get(doc(world.acme), headers=bearer(token))).status_code == 200
        assert_problem(await notes.put(doc(world.acme), headers=bearer(token)), 403, "forbidden")
        assert_problem(await notes.get(doc(world.globex), headers=bearer(token)), 403, "forbidden")


async def test_a_bearer_jwt_of_another_issuer_or_audience_or_expired_is_401(
    world: World, mode: str, oidc_provider: OidcProvider, oidc_provider_factory: OidcProviderFactory
) -> None:
    await _idp_readers(world, oidc_provider)
    elsewhere = oidc_provider_factory()
    foreign = await id_token(elsewhere)  # alice-0001 too, but of another issuer
    token = await id_token(oidc_provider)

    async with serve(notes_app(guard_for(world, mode, issuers=[idp(oidc_provider)]))) as notes:
        body = assert_problem(
            await notes.get("/me", headers=bearer(foreign)), 401, "unauthenticated"
        )
        assert "issuer" in body["detail"]
        assert foreign not in (await notes.get("/me", headers=bearer(foreign))).text
        assert (await notes.get("/me", headers=bearer(token))).status_code == 200
        world.clock.advance(timedelta(hours=1))  # past exp (5 minutes) and the leeway
        assert_problem(await notes.get("/me", headers=bearer(token)), 401, "token_expired")

    other_app = idp(oidc_provider, audience="another-app")
    async with serve(notes_app(guard_for(world, mode, issuers=[other_app]))) as notes:
        fresh = await id_token(oidc_provider)
        world.clock.set(datetime.now(UTC))
        body = assert_problem(await notes.get("/me", headers=bearer(fresh)), 401, "unauthenticated")
        assert "audience" in body["detail"]


async def test_a_bearer_jwt_is_refused_where_no_issuer_is_configured(
    notes: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    token = await id_token(oidc_provider)
    body = assert_problem(await notes.get("/me", headers=bearer(token)), 401, "unauthenticated")
    assert "no bearer JWT" in body["detail"]


# Policy validation ---------------------------------------------------------------------


async def test_a_route_requiring_what_the_policy_lacks_stops_the_start(
    world: World, mode: str
) -> None:
    guard = guard_for(world, mode)
    app = notes_app(guard)

    @app.post("/publish", dependencies=[Depends(guard.require(DOCS, "publish"))])
    async def publish() -> None: ...

    @app.get("/folders", dependencies=[Depends(guard.require("notes:folders", "read"))])
    async def folders() -> None: ...

    with pytest.raises(ConfigurationError) as raised:
        async with serve(app):
            pass
    assert "'publish'" in raised.value.detail and "'notes:folders'" in raised.value.detail
    assert "read" not in raised.value.detail.replace("'notes:folders'", "")  # only the bad


async def test_without_start_up_validation_a_pair_is_validated_on_first_use(
    world: World, mode: str
) -> None:
    guard = guard_for(world, mode)
    app = notes_app(guard, validate=False)

    @app.post("/publish", dependencies=[Depends(guard.require(DOCS, "publish"))])
    async def publish() -> None: ...

    async with serve(app) as notes:
        rita = bearer(world.tokens["rita"])
        assert (await notes.get(doc(world.acme), headers=rita)).status_code == 200
        body = assert_problem(await notes.post("/publish", headers=rita), 500, "config_invalid")
        assert "publish" in body["detail"]
        assert_problem(await notes.post("/publish"), 401, "unauthenticated")  # who, first


# Remote mode: the app's own credential -------------------------------------------------


@pytest.mark.parametrize("app_credential", ["outsider", "garbage"])
async def test_the_server_refusing_the_apps_credential_is_the_apps_500_not_the_callers_401(
    world: World, app_credential: str
) -> None:
    credential = world.tokens.get(app_credential, Secret("wwp_" + "x" * 36))
    guard = guard_for(world, "remote", app_credential=credential)
    async with serve(notes_app(guard, validate=False)) as notes:
        response = await notes.get(doc(world.acme), headers=bearer(world.tokens["rita"]))
        assert_problem(response, 500, "config_invalid")


async def test_failed_authentications_are_limited_per_address(world: World) -> None:
    guard = guard_for(world, "remote", failed_limit="2/minute")
    async with serve(notes_app(guard)) as notes:
        for _ in range(2):
            assert_problem(await notes.get("/me", headers=bearer("nope")), 401, "token_malformed")
        limited = await notes.get("/me", headers=bearer(world.tokens["rita"]))
        assert_problem(limited, 429, "too_many_failed_authentications")
        assert int(limited.headers["retry-after"]) >= 1


# Both modes side by side ---------------------------------------------------------------


async def test_remote_answers_as_embedded(world: World, oidc_provider: OidcProvider) -> None:
    await _idp_readers(world, oidc_provider)
    token = await id_token(oidc_provider)
    unknown = compose(TokenKind.PERSONAL, "B" * 30)
    credentials: dict[str, dict[str, str]] = {
        "anonymous": {},
        "garbage": bearer("garbage"),
        "unknown": bearer(unknown),
        "jwt": bearer(token),
        **{name: bearer(world.tokens[name]) for name in ("rita", "will", "will-ro", "outsider")},
    }
    requests = [
        ("GET", "/me"),
        ("GET", doc(world.acme)),
        ("PUT", doc(world.acme)),
        ("GET", doc(world.globex)),
        ("POST", f"/orgs/{world.acme}/documents"),
        ("POST", f"/orgs/{world.globex}/documents"),
    ]
    answers: dict[str, list[tuple[str, str, str, int, object]]] = {}
    for mode in ("embedded", "remote"):
        guard = guard_for(world, mode, issuers=[idp(oidc_provider)])
        async with serve(notes_app(guard)) as notes:
            answers[mode] = []
            for who, headers in credentials.items():
                for method, path in requests:
                    r = await notes.request(method, path, headers=headers)
                    shown = r.json().get("code") if r.status_code >= 400 else r.json()
                    answers[mode].append((who, method, path, r.status_code, shown))
    assert answers["remote"] == answers["embedded"]
    statuses = {status for *_, status, _ in answers["embedded"]}
    assert statuses == {200, 201, 401, 403}  # the table exercises every answer


def test_caller_repr_shows_no_claims_nor_compiled_subject() -> None:
    from watchword.client import SubjectRef

    caller = Caller(
        kind=CallerKind.BEARER_JWT,
        issuer="https://id.example",
        subject="alice",
        authz_subject=SubjectRef("https://id.example", "alice", {"email": "a@example.com"}),
        claims={"email": "a@example.com"},
    )
    assert "a@example.com" not in repr(caller)
    assert "alice" in repr(caller)


# The app's own objects, through a declared mapping ---------------------------------------


@dataclass
class Note:
    """A row as the app keeps it: not a watchword Object."""

    id: int
    org: str
    kind: str = DOCS


NOTE = ObjectMapping(type_from="kind", organization="org")


async def test_a_routes_object_may_be_the_apps_own_row_in_both_modes(
    world: World, mode: str
) -> None:
    guard = (
        Guard.embedded(world.services, objects=ObjectMappings({Note: NOTE}))
        if mode == "embedded"
        else Guard.remote(
            world.client(world.tokens["notes-app"]),
            clock=world.clock,
            objects=ObjectMappings({Note: NOTE}),
        )
    )
    app = FastAPI()
    guard.install(app)

    async def note(org_id: str, note_id: int) -> Note:
        return Note(note_id, org_id, kind="notes:folders" if note_id == 13 else DOCS)

    @app.get("/orgs/{org_id}/notes/{note_id}")
    async def read(
        caller: Annotated[Caller, Depends(guard.require(DOCS, "read", note))],
    ) -> dict[str, str]:
        return {"read_by": caller.subject}

    @app.get("/unmapped")
    async def unmapped(
        caller: Annotated[Caller, Depends(guard.require(DOCS, "read", lambda: 42))],
    ) -> None:
        return None

    rita = bearer(world.tokens["rita"])
    async with serve(app) as client:
        ok = await client.get(f"/orgs/{world.acme}/notes/1", headers=rita)
        assert ok.status_code == 200 and ok.json() == {"read_by": "rita"}
        assert_problem(
            await client.get(f"/orgs/{world.globex}/notes/1", headers=rita), 403, "forbidden"
        )
        body = assert_problem(
            await client.get(f"/orgs/{world.acme}/notes/13", headers=rita), 500, "config_invalid"
        )
        assert "notes:folders" in body["detail"]
        body = assert_problem(await client.get("/unmapped", headers=rita), 500, "config_invalid")
        assert "no object mapping for int" in body["detail"]


class _Base(DeclarativeBase):
    pass


class NoteRow(_Base):
    __tablename__ = "guard_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    org: Mapped[str | None]
    owner: Mapped[str | None]
    shares: Mapped[dict[str, list[str]] | None] = mapped_column(JSON)


async def test_guard_authorized_narrows_a_select_as_allowed_decides_row_by_row(
    world: World, mode: str
) -> None:
    """A list in SQL, in both modes: the rows ``guard.authorized`` selects are the rows
    ``guard.allowed`` admits one by one, for members, another organization's outsider, and a
    read-only token asked to update (its scope refuses every row)."""
    objects = ObjectMappings(
        {NoteRow: ObjectMapping(type=DOCS, organization="org", owner="owner",
                                acl_users="shares", issuer=world.issuer)}
    )  # fmt: skip
    guard = (
        Guard.embedded(world.services, objects=objects)
        if mode == "embedded"
        else Guard.remote(
            world.client(world.tokens["notes-app"]), clock=world.clock, objects=objects
        )
    )
    database = world.services.runtime.engine
    async with database.begin() as conn:
        await conn.run_sync(_Base.metadata.create_all)
        await conn.execute(
            insert(NoteRow),
            [
                {"id": 1, "org": world.acme, "owner": None, "shares": {}},
                {"id": 2, "org": world.globex, "owner": "will", "shares": {}},
                {"id": 3, "org": world.globex, "owner": None, "shares": {"will": ["update"]}},
                {"id": 4, "org": None, "owner": None, "shares": {"olga": ["*"]}},
            ],
        )
    app = FastAPI()
    guard.install(app)

    @app.get("/list/{action}")
    async def listed(
        action: str, caller: Annotated[Caller, Depends(guard.caller)]
    ) -> dict[str, list[int]]:
        async with AsyncSession(database) as session:
            narrowed = await guard.authorized(select(NoteRow).order_by(NoteRow.id), caller, action)
            in_sql = [row.id for row in await session.scalars(narrowed)]
            every = list(await session.scalars(select(NoteRow).order_by(NoteRow.id)))
        one_by_one = [row.id for row in every if await guard.allowed(caller, action, row)]
        return {"in_sql": in_sql, "one_by_one": one_by_one}

    seen: dict[tuple[str, str], list[int]] = {}
    async with serve(app) as client:
        for who in ("rita", "will", "will-ro", "outsider"):
            for action in ("read", "update"):
                body = (
                    await client.get(f"/list/{action}", headers=bearer(world.tokens[who]))
                ).json()
                assert body["in_sql"] == body["one_by_one"], (who, action, body)
                seen[(who, action)] = body["in_sql"]
    assert seen[("rita", "read")] == [1] and seen[("will", "update")] == [1, 3]
    assert seen[("will-ro", "update")] == [] and seen[("outsider", "read")] == [4]


async def test_a_view_of_another_type_than_declared_is_a_500_even_without_mappings(
    world: World, mode: str
) -> None:
    guard = guard_for(world, mode)  # no object mappings given
    app = FastAPI()
    guard.install(app)
    folders = ObjectMapping(type="notes:folders", organization="org")

    async def folder(org_id: str) -> Any:
        return folders.view(Note(1, org_id))

    @app.get("/orgs/{org_id}/folder", dependencies=[Depends(guard.require(DOCS, "read", folder))])
    async def read() -> None:
        return None

    async with serve(app) as client:
        response = await client.get(
            f"/orgs/{world.acme}/folder", headers=bearer(world.tokens["rita"])
        )
        body = assert_problem(response, 500, "config_invalid")
        assert "notes:folders" in body["detail"]
