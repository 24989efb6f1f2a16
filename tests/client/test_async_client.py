"""``watchword.client.AsyncClient`` against the real app, in process (``httpx.ASGITransport``).

Every answer the client returns is compared with what the server answers to the same
request sent by hand, or with what the library computes in process; requests that really
went out are counted by a transport wrapped around the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.client.world import (
    BOB,
    CLUSTERS,
    GLOBAL_READER,
    ISS,
    QUESTIONS,
    CountingAsyncTransport,
    cluster,
    seed,
)

from watchword import errors
from watchword.authz import parse_object
from watchword.client import (
    CLASSES_BY_CODE,
    POLICY_GENERATION_HEADER,
    AclEndpoint,
    AsyncClient,
    CreatedToken,
    Decision,
    DecisionCache,
    Introspection,
    Question,
    Resource,
    SubjectRef,
    problem_of,
)
from watchword.secret import Secret
from watchword.services import Services

BASE = "http://watchword.test"


@dataclass
class World:
    app: FastAPI
    services: Services
    admin: Secret
    raw: httpx.AsyncClient  # the app, asked by hand as an administrator
    counter: CountingAsyncTransport  # every request the client `ww` sent
    ww: AsyncClient  # the client under test, with the admin key

    @property
    def local_issuer(self) -> str:
        return self.services.runtime.settings.issuer_url

    def connect(
        self, credential: str | Secret | None, *, cache: DecisionCache | None = None
    ) -> AsyncClient:
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        return AsyncClient(BASE, credential, transport=transport, cache=cache)

    async def bind(self, issuer: str, subject: str, role: str = GLOBAL_READER) -> None:
        """A role binding added through the API (bumps the policy generation)."""
        r = await self.raw.post(
            "/v1/role-bindings",
            json={"issuer": issuer, "subject_id": subject, "role_ids": [role]},
        )
        assert r.status_code == 201, r.text


@pytest.fixture
async def world(app: FastAPI, services: Services) -> AsyncIterator[World]:
    admin = await seed(services)
    counter = CountingAsyncTransport(httpx.ASGITransport(app=app, raise_app_exceptions=False))
    raw = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url=BASE,
        headers={"Authorization": f"Bearer {admin.reveal()}"},
    )
    async with raw, AsyncClient(BASE, admin, transport=counter) as ww:
        yield World(app, services, admin, raw, counter, ww)


def _status(exc: BaseException) -> int | None:
    problem = problem_of(exc)
    return None if problem is None else problem.status


def _wire(q: Question) -> dict[str, Any]:
    obj = q.object
    return {"action": q.action, "object": obj.to_json() if isinstance(obj, Resource) else dict(obj)}


# Authorization -----------------------------------------------------------------------------


async def test_check_allowed_and_denied_agree_with_the_server(world: World) -> None:
    for question, expected in QUESTIONS:
        decision = await world.ww.check(BOB, question.action, question.object)
        by_hand = await world.raw.post("/v1/authz/check", json={"subject": BOB, **_wire(question)})
        assert by_hand.status_code == 200, by_hand.text
        assert decision == Decision.from_json(by_hand.json())
        assert decision.allowed is expected and bool(decision) is expected, question
    # The deciding level, role and permission come through typed.
    denied = await world.ww.check(BOB, "delete", cluster("c1"))
    assert denied.decided_by == "organization" and denied.role == "role_nodelete"
    assert denied.permission is not None and denied.permission.effect == "deny"
    assert denied.permission.actions == ("delete",)
    # A plain mapping in the wire shape is the same object as a Resource.
    as_mapping = {"type": CLUSTERS, "id": "c1", "org_id": "acme"}
    assert await world.ww.check(BOB, "read", as_mapping) == await world.ww.check(
        BOB, "read", cluster("c1")
    )


async def test_check_batch_equals_one_by_one_in_one_call(world: World) -> None:
    questions = [q for q, _ in QUESTIONS]
    one_by_one = [await world.ww.check(BOB, q.action, q.object) for q in questions]
    sent = len(world.counter.requests)
    batch = await world.ww.check_batch(BOB, questions)
    assert batch == one_by_one
    assert len(world.counter.requests) == sent + 1  # all questions in one HTTP call
    # Plain tuples are questions too.
    assert await world.ww.check_batch(BOB, [(q.action, q.object) for q in questions]) == batch
    assert await world.ww.check_batch(BOB, []) == []


async def test_check_batch_over_the_server_limit_is_split(world: World) -> None:
    many = [Question("read", cluster(f"c{i}", org=("acme", "globex")[i % 2])) for i in range(1001)]
    sent = len(world.counter.requests)
    answers = await world.ww.check_batch(BOB, many)
    assert len(world.counter.requests) == sent + 2  # 1,000 questions, then 1
    assert [d.allowed for d in answers] == [i % 2 == 0 for i in range(1001)]


async def test_filter_agrees_with_check_and_renders_sql(world: World) -> None:
    objects = [q.object for q, _ in QUESTIONS if isinstance(q.object, Resource)]
    result = await world.ww.filter(
        BOB,
        "read",
        CLUSTERS,
        objects=objects,
        sql={
            "dialect": "sqlite",
            "table": "clusters",
            "columns": {"id": "id", "org_id": "org_id", "owner": "owner"},
            "acl": {"kind": "json", "users": "user_acl", "groups": "group_acl"},
        },
    )
    allowed = [o.id for o in objects if (await world.ww.check(BOB, "read", o)).allowed]
    assert result.allowed_ids == tuple(allowed) and allowed
    assert result.type == CLUSTERS and result.action == "read" and result.node_count >= 1
    assert result.residual["op"] in {"or", "and", "in", "eq", "acl_has", "true", "false", "not"}
    assert result.sql is not None and result.sql.dialect == "sqlite" and result.sql.sql
    # Without objects or SQL: the residual only.
    bare = await world.ww.filter(BOB, "read", CLUSTERS)
    assert bare.allowed_ids is None and bare.sql is None and bare.residual == result.residual


async def test_explain_agrees_with_check(world: World) -> None:
    for question, expected in QUESTIONS:
        explanation = await world.ww.explain(BOB, question.action, question.object)
        assert explanation.decision == await world.ww.check(BOB, question.action, question.object)
        assert explanation.text.startswith("ALLOW: " if expected else "DENY: ")
        assert explanation.action == question.action and explanation.object_type == CLUSTERS
        assert {s.stage for s in explanation.stages} >= {"global", "organization", "acl"}
    why = await world.ww.explain(BOB, "delete", cluster("c1"))
    organization = next(s for s in why.stages if s.stage == "organization")
    assert organization.verdict == "deny"
    assert any(m.role == "role_nodelete" for m in organization.matches)


async def test_an_object_acl_grant_then_check_allowed(world: World) -> None:
    dave = {"issuer": ISS, "id": "dave"}
    plain = cluster("c8", org=None)
    granted = cluster("c8", org=None, acl_users={f"{ISS}|dave": ["read"]})
    assert not await world.ww.check(dave, "read", plain)
    decision = await world.ww.check(dave, "read", granted)
    assert decision.allowed and decision.decided_by == "acl"
    assert decision.acl_entry == f"user:{ISS}|dave"
    assert not await world.ww.check(dave, "update", granted)  # the grant names read only


async def test_a_role_grant_shows_in_the_acl_document_and_the_check_agrees(world: World) -> None:
    iss = world.local_issuer
    carol = SubjectRef(iss, "carol")
    before = await world.ww.query_acl(iss, "carol")
    assert before.global_endpoints == () and before.subject.id == "carol"
    assert not await world.ww.check(carol, "read", cluster("c7", org=None))

    await world.bind(iss, "carol")

    after = await world.ww.query_acl(iss, "carol")
    assert after.global_endpoints == (AclEndpoint(CLUSTERS, ("read",)),)
    decision = await world.ww.check(carol, "read", cluster("c7", org=None))
    assert decision.allowed and decision.decided_by == "global"
    assert decision.role == GLOBAL_READER
    # Her own ACL, asked with her own token, is the same document.
    token = await world.ww.create_token("acl", owner_subject="carol", scopes=["*:*"])
    async with world.connect(token.token) as as_carol:
        mine = await as_carol.acl()
    assert mine.subject.id == "carol" and mine.global_endpoints == after.global_endpoints
    # An admin key names no subject: it has no ACL of its own.
    with pytest.raises(errors.SubjectRequired) as caught:
        await world.ww.acl()
    assert caught.value.code == "subject_required" and _status(caught.value) == 400


# Tokens and introspection ------------------------------------------------------------------


async def test_tokens_create_list_rotate_revoke_then_introspection_is_inactive(
    world: World,
) -> None:
    ww = world.ww
    created = await ww.create_token("ci", owner_subject="erin", scopes=["*:*"], permission="rw")
    assert isinstance(created, CreatedToken) and isinstance(created.token, Secret)
    assert created.state == "active" and created.owner_subject == "erin"
    assert created.token.reveal().startswith(created.prefix)
    assert created.token.reveal() not in repr(created)

    page = await ww.list_tokens(owner_subject="erin")
    assert [t.id for t in page.items] == [created.id] and page.next_cursor is None
    every = [t.id async for t in ww.iter_tokens(limit=1)]
    assert created.id in every
    got = await ww.get_token(created.id)
    assert (got.id, got.prefix, got.scopes, got.permission) == (
        created.id,
        created.prefix,
        ("*:*",),
        "rw",
    )

    seen = await ww.introspect(created.token)
    assert seen.active and seen.sub == "erin" and seen.client_id == created.id
    assert seen.scopes == ("*:*",) and seen.token_type == "bearer"

    # A personal token is rotated by its owner only: an admin key is refused.
    with pytest.raises(errors.PermissionDenied):
        await ww.rotate_token(created.id)
    async with world.connect(created.token) as as_erin:
        rotated = await as_erin.rotate_token(created.id)
    assert rotated.rotated_from == created.id and rotated.token != created.token

    revoked = await ww.revoke_token(rotated.id)
    assert revoked.state == "revoked" and revoked.revoked_at is not None
    assert (await ww.revoke_token(rotated.id)).state == "revoked"  # idempotent
    assert await ww.introspect(rotated.token) == Introspection(active=False)
    assert not await ww.introspect("wwp_not-a-token")


# Errors ------------------------------------------------------------------------------------


async def test_problems_raise_the_library_exception_of_their_code(
    world: World, services: Services
) -> None:
    unknown = {"type": "nope:x", "id": "1"}
    with pytest.raises(errors.UnknownResourceType) as remote:
        await world.ww.check(BOB, "read", unknown)
    # The same class, and the same detail, as the library raises in process.
    compiled = await services.rbac.compile_subject_document(BOB)
    with pytest.raises(errors.UnknownResourceType) as local:
        services.policy_engine.check(compiled, "read", parse_object(unknown))
    exc = remote.value
    assert type(exc) is type(local.value) and exc.detail == local.value.detail
    assert exc.code == "unknown_resource_type" and _status(exc) == 400
    problem = problem_of(exc)
    assert problem is not None and problem.request_id and problem.code == exc.code
    # Plain attributes too, for callers that do not use problem_of:
    assert vars(exc)["request_id"] == problem.request_id and vars(exc)["status"] == 400
    assert problem.type == "https://watchword.dev/problems/unknown_resource_type"

    with pytest.raises(errors.UnknownAction):
        await world.ww.check(BOB, "launch", cluster("c1"))
    with pytest.raises(errors.InvalidInput) as bad_subject:
        await world.ww.check({**BOB, "account_type": "robot"}, "read", cluster("c1"))
    assert type(bad_subject.value) is errors.InvalidInput
    assert bad_subject.value.pointer == "/subject/account_type"
    with pytest.raises(errors.InvalidInput) as schema:
        await world.ww.check(BOB, "", cluster("c1"))  # refused by the request schema: 422
    assert _status(schema.value) == 422 and schema.value.code == "invalid_request"
    fields = problem_of(schema.value)
    assert fields is not None and fields.errors and fields.errors[0].pointer == "/action"
    with pytest.raises(errors.NotFound) as missing:
        await world.ww.get_token("tok_missing")
    assert _status(missing.value) == 404
    with pytest.raises(errors.InvalidInput):
        await world.ww.get_token("..")  # never another route


async def test_a_bad_credential_is_a_401_that_shows_no_secret(world: World) -> None:
    key = "wwa_" + "s3cr3t" * 8
    async with world.connect(key) as stranger:
        assert key not in repr(stranger) and key not in str(stranger)
        with pytest.raises(errors.AuthenticationError) as caught:
            await stranger.check(BOB, "read", cluster("c1"))
    exc = caught.value
    assert _status(exc) == 401 and type(exc) is CLASSES_BY_CODE[exc.code]
    problem = problem_of(exc)
    shown = [repr(exc), str(exc), repr(exc.args), repr(problem), repr(vars(exc))]
    assert not [s for s in shown if key in s]
    # Without any credential: 401 too.
    async with world.connect(None) as anonymous:
        with pytest.raises(errors.AuthenticationError):
            await anonymous.check(BOB, "read", cluster("c1"))


async def test_no_secret_in_the_client_repr(world: World) -> None:
    key = world.admin.reveal()
    for shown in (repr(world.ww), str(world.ww), f"{world.ww!r}"):
        assert key not in shown and "Secret('**********')" in shown
        assert "AsyncClient(base_url='http://watchword.test'" in shown
    async with AsyncClient("https://user:pa55word@watchword.example", "k" * 40) as odd:
        assert "pa55word" not in repr(odd) and "k" * 40 not in repr(odd)


# The decision cache ------------------------------------------------------------------------


async def test_a_cache_hit_sends_nothing_and_a_new_generation_drops_the_cache(
    world: World,
) -> None:
    iss = world.local_issuer
    carol = SubjectRef(iss, "carol")
    cache = DecisionCache(max_age=None)
    counter = CountingAsyncTransport(httpx.ASGITransport(app=world.app))
    async with AsyncClient(BASE, world.admin, transport=counter, cache=cache) as ww:
        first = await ww.check(carol, "read", cluster("c1", org=None))
        assert not first and len(counter.requests) == 1
        generation = ww.policy_generation
        assert generation is not None and cache.generation == generation

        again = await ww.check(carol, "read", cluster("c1", org=None))
        assert again == first and len(counter.requests) == 1 and cache.hits == 1

        await world.bind(iss, "carol")  # through the API: the generation moves on

        # Until an answer shows the new generation, the client cannot know of it (the
        # documented staleness, bounded by max_age): still a hit, still nothing sent.
        assert await ww.check(carol, "read", cluster("c1", org=None)) == first
        assert len(counter.requests) == 1

        # Any /v1/authz answer brings the new generation: every entry is dropped ...
        other = await ww.check(carol, "read", cluster("c2", org=None))
        assert other.allowed and len(counter.requests) == 2
        assert ww.policy_generation is not None and ww.policy_generation > generation
        assert len(cache) == 1  # the new answer only

        # ... so the first question is asked again, and answered as the server now does.
        now = await ww.check(carol, "read", cluster("c1", org=None))
        assert now.allowed and now.decided_by == "global" and len(counter.requests) == 3


async def test_the_cache_learns_the_generation_from_explain_and_batches(world: World) -> None:
    iss = world.local_issuer
    frank = SubjectRef(iss, "frank")
    cache = DecisionCache(max_age=None)
    counter = CountingAsyncTransport(httpx.ASGITransport(app=world.app))
    async with AsyncClient(BASE, world.admin, transport=counter, cache=cache) as ww:
        questions = [Question("read", cluster(f"c{i}", org=None)) for i in range(3)]
        await ww.check(frank, "read", questions[0].object)
        # A batch sends only what the cache does not hold.
        batch = await ww.check_batch(frank, questions)
        sent = counter.requests[-1]
        assert len(counter.requests) == 2 and sent.content.count(b'"action"') == 2
        assert [d.allowed for d in batch] == [False] * 3 and len(cache) == 3
        assert await ww.check_batch(frank, questions) == batch and len(counter.requests) == 2

        await world.bind(iss, "frank")
        why = await ww.explain(frank, "read", cluster("x", org=None))
        assert why.decision.allowed and len(cache) == 0
        assert [d.allowed for d in await ww.check_batch(frank, questions)] == [True] * 3


async def test_the_cache_is_bounded_in_size_and_age(world: World) -> None:
    now = [0.0]
    cache = DecisionCache(max_entries=2, max_age=10.0, clock=lambda: now[0])
    counter = CountingAsyncTransport(httpx.ASGITransport(app=world.app))
    async with AsyncClient(BASE, world.admin, transport=counter, cache=cache) as ww:
        for i in range(3):
            await ww.check(BOB, "read", cluster(f"c{i}"))
        assert len(cache) == 2 and len(counter.requests) == 3
        await ww.check(BOB, "read", cluster("c2"))  # the most recent: kept
        assert len(counter.requests) == 3
        await ww.check(BOB, "read", cluster("c0"))  # the least recent: dropped
        assert len(counter.requests) == 4

        now[0] = 9.5
        await ww.check(BOB, "read", cluster("c0"))
        assert len(counter.requests) == 4
        now[0] = 20.0  # older than max_age: asked again
        await ww.check(BOB, "read", cluster("c0"))
        assert len(counter.requests) == 5
        # Different subjects, actions or objects are different entries.
        await ww.check({**BOB, "groups": []}, "read", cluster("c0"))
        await ww.check(BOB, "update", cluster("c0"))
        await ww.check(BOB, "read", cluster("c0", owner=f"{ISS}|bob"))
        assert len(counter.requests) == 8


async def test_every_authz_answer_carries_the_policy_generation(world: World) -> None:
    body = {"subject": BOB, "action": "read", "object": cluster("c1").to_json()}
    answers = [
        await world.raw.post("/v1/authz/check", json=body),
        await world.raw.post("/v1/authz/explain", json=body),
        await world.raw.post(
            "/v1/authz/filter", json={"subject": BOB, "action": "read", "type": CLUSTERS}
        ),
    ]
    values = {int(r.headers[POLICY_GENERATION_HEADER]) for r in answers}
    assert len(values) == 1
    await world.bind(ISS, "gina")
    after = await world.raw.post("/v1/authz/check", json=body)
    assert int(after.headers[POLICY_GENERATION_HEADER]) > values.pop()
    documented = world.app.openapi()["paths"]["/v1/authz/check"]["post"]["responses"]["200"]
    assert POLICY_GENERATION_HEADER in documented["headers"]
