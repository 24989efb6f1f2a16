"""The change watch: decisions served from cache read the database only after a change.

Two engines on one database stand for two processes (each engine has its own watch, as each
process has its own). Queries are counted with SQLAlchemy's cursor events, so "no database
query" is asserted directly, not inferred from timing.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.api.app import create_app
from watchword.bootstrap import AdminKeyAuthenticator, create_admin_key, revoke_admin_key
from watchword.clock import FakeClock
from watchword.config import load_settings
from watchword.errors import AuthenticationError
from watchword.principal import Credential, CredentialSource
from watchword.rbac.store import organizations
from watchword.runtime import Runtime
from watchword.services import Services
from watchword.storage.changes import RBAC, ChangeWatch, listen_for_changes, watch_for
from watchword.storage.db import create_engine_for_url
from watchword.storage.migrate import upgrade_engine

STALENESS = timedelta(seconds=1)
SUBJECT = {
    "issuer": "https://idp.example",
    "id": "alice",
    "organizations": {"acme": ["org-reader"]},
}
OBJECT = {"type": "watchword:projects", "id": "web", "org_id": "acme", "project_id": "web"}


# --- the watch itself ------------------------------------------------------------------------


def test_a_read_is_trusted_for_the_staleness_bound_without_a_listener() -> None:
    clock = FakeClock()
    watch = ChangeWatch(clock=clock, staleness=STALENESS)
    mark = watch.mark(RBAC)
    assert watch.fresh(RBAC, mark)
    clock.advance(timedelta(milliseconds=999))
    assert watch.fresh(RBAC, mark)
    clock.advance(timedelta(milliseconds=1))
    assert not watch.fresh(RBAC, mark)
    assert not watch.fresh(RBAC, None)


def test_a_change_after_the_mark_makes_it_stale_listener_or_not() -> None:
    clock = FakeClock()
    watch = ChangeWatch(clock=clock, staleness=STALENESS)
    watch.listener_up()
    mark = watch.mark(RBAC)
    clock.advance(timedelta(hours=1))
    assert watch.fresh(RBAC, mark)  # a listener would have heard of a change
    assert not watch.fresh(RBAC, mark, max_age=60.0)  # unless the cap says otherwise
    watch.changed("admin_keys")
    assert watch.fresh(RBAC, mark)  # another topic
    watch.changed(RBAC)
    assert not watch.fresh(RBAC, mark)
    watch.changed("from-a-newer-replica")  # an unknown topic is ignored, not an error


def test_a_listener_that_goes_down_or_comes_back_invalidates_every_topic() -> None:
    clock = FakeClock()
    watch = ChangeWatch(clock=clock, staleness=STALENESS)
    watch.listener_up()
    mark = watch.mark(RBAC)
    watch.listener_down()
    assert not watch.listening and not watch.fresh(RBAC, mark)
    mark = watch.mark(RBAC)
    watch.listener_up()  # it may have missed notifications while it was away
    assert not watch.fresh(RBAC, mark)


# --- two processes on one database --------------------------------------------------------------


@contextmanager
def counting(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def _services(url: str, clock: FakeClock) -> Services:
    engine = create_engine_for_url(url)
    await upgrade_engine(engine)
    runtime = Runtime(settings=load_settings(environ={}), engine=engine, clock=clock)
    return Services.build(runtime)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def two(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """Two "processes" (services on their own engines) sharing one database."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'shared.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_empty_url")
    clock = FakeClock()
    one = await _services(url, clock)
    other = await _services(url, clock)
    try:
        yield request.param, clock, one, other
    finally:
        for services in (one, other):
            await services.aclose()
            await services.runtime.close()


async def test_a_cached_generation_reads_nothing_and_sees_its_own_writes_at_once(two: Any) -> None:
    _, _, one, _ = two
    before = await one.rbac.generation()
    with counting(one.runtime.engine) as queries:
        for _ in range(5):
            assert await one.rbac.generation() == before
    assert queries == []
    await organizations.create_organization(one.store, name=f"o-{secrets.token_hex(3)}")
    assert await one.rbac.generation() == before + 1  # no wait: this process wrote it


async def test_another_process_write_is_seen_within_the_bound_or_by_the_listener(
    two: Any,
) -> None:
    dialect, clock, one, other = two
    before = await one.rbac.generation()
    stop, ready = asyncio.Event(), asyncio.Event()
    listener = None
    if dialect == "postgres":
        listener = asyncio.create_task(
            listen_for_changes(one.runtime.engine, stop=stop, ready=ready)
        )
        await asyncio.wait_for(ready.wait(), timeout=30)
        assert watch_for(one.runtime.engine).listening
        assert await one.rbac.generation() == before  # re-read once: the listener came up
    try:
        await organizations.create_organization(other.store, name=f"o-{secrets.token_hex(3)}")
        if dialect == "sqlite":
            # No notifications on SQLite: the bound, on the process's clock.
            assert await one.rbac.generation() == before
            clock.advance(STALENESS)
            assert await one.rbac.generation() == before + 1
        else:
            # Heard as it commits, whatever the clock says; wait for the notification.
            for _ in range(600):
                if await one.rbac.generation() == before + 1:
                    break
                await asyncio.sleep(0.05)
            assert await one.rbac.generation() == before + 1
            with counting(one.runtime.engine) as queries:
                clock.advance(STALENESS * 10)  # a listener needs no bound
                assert await one.rbac.generation() == before + 1
            assert queries == []
    finally:
        stop.set()
        if listener is not None:
            await listener
    assert not watch_for(one.runtime.engine).listening


async def test_admin_keys_are_verified_once_and_revocation_reaches_every_process(
    two: Any,
) -> None:
    _, clock, one, other = two
    key, secret = await create_admin_key(one.runtime.engine, clock)
    app = create_app(services=one)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {secret.reveal()}"}
    body = {"subject": SUBJECT, "action": "read", "object": OBJECT}
    async with httpx.AsyncClient(transport=transport, base_url="http://ww.test") as client:
        first = await client.post("/v1/authz/check", json=body, headers=headers)
        assert first.status_code == 200 and first.json()["allowed"], first.text
        with counting(one.runtime.engine) as queries:
            for _ in range(3):
                again = await client.post("/v1/authz/check", json=body, headers=headers)
                assert again.status_code == 200 and again.json() == first.json()
        assert queries == []  # the key, the generation and the policy all came from cache

        # Revoked by another process: refused within the bound (SQLite, no listener here).
        await revoke_admin_key(other.runtime.engine, key.id, clock)
        clock.advance(STALENESS)
        refused = await client.post("/v1/authz/check", json=body, headers=headers)
        assert refused.status_code == 401, refused.text

    # Revoked in this process: refused at once, whatever the clock.
    key2, secret2 = await create_admin_key(one.runtime.engine, clock)
    authenticator = next(a for a in one.authenticators if isinstance(a, AdminKeyAuthenticator))
    credential = Credential(CredentialSource.BEARER, secret2)
    assert (await authenticator.authenticate(credential)).superuser
    await revoke_admin_key(one.runtime.engine, key2.id, clock)
    with pytest.raises(AuthenticationError):
        await authenticator.authenticate(credential)


async def test_an_inline_subject_is_compiled_once_and_again_after_a_policy_change(
    two: Any,
) -> None:
    _, _, one, _ = two
    document = {"issuer": "https://i", "id": "a", "organizations": {"o": ["org-reader"]}}
    first = await one.rbac.compile_subject_document(document)
    assert await one.rbac.compile_subject_document(dict(reversed(document.items()))) is first
    await organizations.create_organization(one.store, name=f"o-{secrets.token_hex(3)}")
    again = await one.rbac.compile_subject_document(document)
    assert again is not first and again.policy is one.policy_engine.policy
    assert again.subject == first.subject


@pytest.mark.postgres
async def test_the_listener_counts_itself_down_when_its_heartbeat_stops_coming_back(
    pg_empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine_for_url(pg_empty_url)
    watch = watch_for(engine)
    stop, ready = asyncio.Event(), asyncio.Event()
    beat = timedelta(milliseconds=200)
    task = asyncio.create_task(listen_for_changes(engine, stop=stop, ready=ready, heartbeat=beat))
    try:
        await asyncio.wait_for(ready.wait(), timeout=30)
        assert _listening(watch)

        # Now nothing is delivered any more (a half-open connection, a pooler that drops
        # LISTEN): no error reaches the listener, only the missing echo tells.
        async def silence(self: object, **options: Any) -> AsyncIterator[object]:
            await asyncio.sleep(options.get("timeout") or 0)
            nothing: tuple[object, ...] = ()
            for item in nothing:
                yield item

        monkeypatch.setattr(psycopg.AsyncConnection, "notifies", silence)
        for _ in range(600):
            if not _listening(watch):
                break
            await asyncio.sleep(0.05)
        assert not _listening(watch)
    finally:
        stop.set()
        await task
        await engine.dispose()


def _listening(watch: ChangeWatch) -> bool:
    return watch.listening  # a call: the value changes under the test's feet
