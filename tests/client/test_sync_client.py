"""``watchword.client.Client`` (blocking) against a real server over TCP.

One server for the module: the app as ``watchword serve`` builds it (``create_app(settings)``,
owning its services, which its lifespan opens and closes), served by uvicorn in a thread on
a free loopback port, over a SQLite file seeded before it starts. Each test asks about its
own subjects, so the tests do not depend on one another.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from tests.client.world import (
    BOB,
    CLUSTERS,
    GLOBAL_READER,
    ISS,
    QUESTIONS,
    CountingTransport,
    cluster,
    seed,
)
from tests.support.live import free_port

from watchword import errors
from watchword.api.app import create_app
from watchword.client import (
    AclEndpoint,
    Client,
    Decision,
    DecisionCache,
    Introspection,
    Resource,
    SubjectRef,
    problem_of,
)
from watchword.config import Settings, load_settings
from watchword.secret import Secret
from watchword.services import Services

START_TIMEOUT = 60.0  # seconds: a bound on start-up, not a measurement


@dataclass(frozen=True)
class Served:
    url: str
    admin: Secret
    issuer: str  # the server's own issuer URL: the issuer of the owners of tokens it makes

    def client(
        self,
        credential: str | Secret | None = None,
        *,
        cache: DecisionCache | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> Client:
        return Client(
            self.url,
            self.admin if credential is None else credential,
            cache=cache,
            transport=transport,
        )

    def bind(self, issuer: str, subject: str) -> None:
        """A role binding added through the API (bumps the policy generation)."""
        r = httpx.post(
            f"{self.url}/v1/role-bindings",
            json={"issuer": issuer, "subject_id": subject, "role_ids": [GLOBAL_READER]},
            headers={"Authorization": f"Bearer {self.admin.reveal()}"},
        )
        assert r.status_code == 201, r.text


async def _seed(settings: Settings) -> Secret:
    async with Services.open(settings) as services:
        await services.runtime.prepare_schema()
        return await seed(services)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder: Path = tmp_path_factory.mktemp("client-sync")
    port = free_port()
    settings = load_settings(
        environ={},
        env="development",
        issuer_url=f"http://127.0.0.1:{port}",
        database={"url": f"sqlite+aiosqlite:///{folder / 'watchword.sqlite3'}"},
        auth={"failed_limit": "off"},
    )
    admin = asyncio.run(_seed(settings))
    config = uvicorn.Config(
        create_app(settings, run_jobs=False),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        loop="asyncio",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="watchword-client-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            pytest.fail("the server thread ended before it served", pytrace=False)
        if time.monotonic() > deadline:
            server.should_exit = True
            pytest.fail(f"the server did not start within {START_TIMEOUT:g} s", pytrace=False)
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", admin, settings.issuer_url)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_check_batch_filter_and_explain_agree_with_the_server(served: Served) -> None:
    headers = {"Authorization": f"Bearer {served.admin.reveal()}"}
    with served.client() as ww:
        decisions = []
        for question, expected in QUESTIONS:
            decision = ww.check(BOB, question.action, question.object)
            obj = question.object
            wire = obj.to_json() if isinstance(obj, Resource) else dict(obj)
            by_hand = httpx.post(
                f"{served.url}/v1/authz/check",
                json={"subject": BOB, "action": question.action, "object": wire},
                headers=headers,
            )
            assert decision == Decision.from_json(by_hand.json())
            assert decision.allowed is expected, question
            decisions.append(decision)
            assert ww.explain(BOB, question.action, question.object).decision == decision

        assert ww.check_batch(BOB, [q for q, _ in QUESTIONS]) == decisions

        objects = [q.object for q, _ in QUESTIONS if q.action == "read"]
        result = ww.filter(BOB, "read", CLUSTERS, objects=objects)
        assert result.allowed_ids == tuple(
            o.id for o in objects if isinstance(o, Resource) and ww.check(BOB, "read", o)
        )
        assert ww.policy_generation is not None


def test_tokens_lifecycle_then_introspection_is_inactive(served: Served) -> None:
    with served.client() as ww:
        created = ww.create_token("ci", owner_subject="hank", scopes=["*:*"], permission="rw")
        assert created.token.reveal() not in repr(created)
        assert [t.id for t in ww.list_tokens(owner_subject="hank").items] == [created.id]
        assert created.id in [t.id for t in ww.iter_tokens(limit=2)]
        assert ww.get_token(created.id).state == "active"
        live = ww.introspect(created.token)
        assert live.active and live.sub == "hank" and live.iss == served.issuer
        with served.client(created.token) as as_hank:
            rotated = as_hank.rotate_token(created.id)
            assert as_hank.acl().subject.id == "hank"
        assert rotated.rotated_from == created.id
        assert ww.revoke_token(created.id).state == "revoked"
        assert ww.revoke_token(rotated.id).state == "revoked"
        assert ww.introspect(created.token) == Introspection(active=False)
        assert ww.introspect(rotated.token) == Introspection(active=False)


def test_a_role_grant_then_the_acl_and_the_check_allow(served: Served) -> None:
    ivy = SubjectRef(ISS, "ivy")
    with served.client() as ww:
        assert ww.query_acl(ISS, "ivy").global_endpoints == ()
        assert not ww.check(ivy, "read", cluster("c1", org=None))
        served.bind(ISS, "ivy")
        assert ww.query_acl(ISS, "ivy").global_endpoints == (AclEndpoint(CLUSTERS, ("read",)),)
        decision = ww.check(ivy, "read", cluster("c1", org=None))
        assert decision.allowed and decision.decided_by == "global"


def test_problems_raise_the_library_exceptions_and_show_no_secret(served: Served) -> None:
    with served.client() as ww:
        with pytest.raises(errors.UnknownResourceType) as unknown:
            ww.check(BOB, "read", {"type": "nope:x", "id": "1"})
        found = problem_of(unknown.value)
        assert found is not None and found.status == 400 and found.request_id
        with pytest.raises(errors.SubjectRequired):
            ww.acl()
    key = "wwa_" + "hunter2" * 6
    with served.client(key) as stranger:
        assert key not in repr(stranger)
        with pytest.raises(errors.AuthenticationError) as caught:
            stranger.check(BOB, "read", cluster("c1"))
    exc = caught.value
    found = problem_of(exc)
    assert found is not None and found.status == 401
    assert not [s for s in (repr(exc), str(exc), repr(found), repr(vars(exc))) if key in s]
    with served.client() as admin:
        assert served.admin.reveal() not in repr(admin) and "**********" in repr(admin)


def test_a_cache_hit_sends_nothing_and_a_new_generation_drops_it(served: Served) -> None:
    jude = SubjectRef(ISS, "jude")
    counter = CountingTransport()
    with served.client(cache=DecisionCache(max_age=None), transport=counter) as ww:
        first = ww.check(jude, "read", cluster("c1", org=None))
        assert not first and len(counter.requests) == 1
        assert ww.check(jude, "read", cluster("c1", org=None)) == first
        assert len(counter.requests) == 1  # a hit: nothing sent
        generation = ww.policy_generation
        assert generation is not None

        served.bind(ISS, "jude")
        assert ww.check(jude, "read", cluster("c2", org=None)).allowed  # a miss: new generation
        assert ww.policy_generation is not None and ww.policy_generation > generation
        now = ww.check(jude, "read", cluster("c1", org=None))
        assert now.allowed and len(counter.requests) == 3
