from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from watchword.clock import FakeClock
from watchword.errors import DatabaseUnavailable
from watchword.locks import Locks, SQLiteBackend
from watchword.runtime import Runtime
from watchword.services import Services
from watchword.tokens import NewToken, Owner, TokenKind, store
from watchword.tokens.janitor import LEASE_KEY
from watchword.tokens.rotation import DeletionReason
from watchword.tokens.tables import api_tokens

DAY = timedelta(days=1)


async def _ids(runtime: Runtime) -> set[str]:
    async with runtime.engine.connect() as conn:
        return {r[0] for r in await conn.execute(select(api_tokens.c.id))}


def _metric(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value("watchword_token_janitor_deleted_total", {"reason": reason})
    return value or 0.0


async def _cases(runtime: Runtime, services: Services, owner: Owner) -> dict[str, str]:
    """One token per case, as the table in the brief lists them; returns case -> id."""
    clock = runtime.clock
    assert isinstance(clock, FakeClock)
    service = services.tokens
    start = clock.now()

    async def make(kind: TokenKind, expires_in: timedelta | None) -> str:
        spec = NewToken(
            kind=kind,
            name="t",
            owner=owner,
            scopes=frozenset(),
            expires_at=clock.now() + expires_in if expires_in else None,
        )
        return (await service.create(spec)).record.id

    ids = {
        "expired_beyond_retention": await make(TokenKind.PERSONAL, DAY),
        "revoked_beyond_retention": await make(TokenKind.PERSONAL, None),
        "personal_no_expiry": await make(TokenKind.PERSONAL, None),
        "live_integration": await make(TokenKind.INTEGRATION, 30 * DAY),
    }
    await service.revoke(ids["revoked_beyond_retention"])
    # A legacy integration token: no expiry (made before they always had one).
    legacy = await make(TokenKind.INTEGRATION, DAY)
    async with runtime.engine.begin() as conn:
        await conn.execute(
            api_tokens.update().where(api_tokens.c.id == legacy).values(expires_at=None)
        )
    ids["legacy_integration_no_expiry"] = legacy
    clock.set(start + 9 * DAY)  # 8 days past the first expiry: retention (7 d) is over
    ids["expired_within_retention"] = await make(TokenKind.SERVICE_ACCOUNT, DAY)
    ids["revoked_within_retention"] = await make(TokenKind.PERSONAL, 10 * DAY)
    await service.revoke(ids["revoked_within_retention"])
    clock.advance(2 * DAY)
    return ids


DELETED = {
    "expired_beyond_retention": DeletionReason.EXPIRED,
    "revoked_beyond_retention": DeletionReason.REVOKED,
    "legacy_integration_no_expiry": DeletionReason.LEGACY_NO_EXPIRY,
}
KEPT = {
    "expired_within_retention",
    "revoked_within_retention",
    "personal_no_expiry",
    "live_integration",
}


async def test_janitor_deletes_exactly_the_expected_cases_and_counts_by_reason(
    runtime: Runtime, owner: Owner, services: Services
) -> None:
    ids = await _cases(runtime, services, owner)
    assert set(ids) == set(DELETED) | KEPT
    report = await services.janitor.run(batch_size=2)  # several batches
    assert report.ran and not report.dry_run
    assert dict(report.deleted) == dict.fromkeys(DELETED.values(), 1)
    assert await _ids(runtime) == {ids[case] for case in KEPT}
    for reason in DeletionReason:
        assert _metric(runtime.registry, reason.value) == 1
    again = await services.janitor.run()
    assert again.total == 0


async def test_janitor_dry_run_deletes_nothing_and_reports_the_same(
    runtime: Runtime, owner: Owner, services: Services
) -> None:
    ids = await _cases(runtime, services, owner)
    report = await services.janitor.run(dry_run=True)
    assert report.dry_run and report.total == 3
    assert await _ids(runtime) == set(ids.values())
    assert _metric(runtime.registry, "expired") == 0
    assert report.as_dict()["deleted"] == {
        "expired": 1,
        "revoked": 1,
        "legacy_no_expiry": 1,
    }


async def test_janitor_skips_when_another_replica_holds_the_lease(
    runtime: Runtime, owner: Owner, services: Services
) -> None:
    await _cases(runtime, services, owner)
    other = Locks(SQLiteBackend(runtime.engine, clock=runtime.clock))
    try:
        async with other.hold(LEASE_KEY, ttl=timedelta(minutes=1), wait=timedelta(0)):
            report = await services.janitor.run()
        assert not report.ran and report.total == 0
        assert len(await _ids(runtime)) == 7
    finally:
        await other.aclose()
    assert (await services.janitor.run()).total == 3


async def test_run_janitor_forever_runs_until_stopped(
    runtime: Runtime, owner: Owner, services: Services
) -> None:
    await _cases(runtime, services, owner)
    stop = asyncio.Event()
    task = asyncio.create_task(services.janitor.run_forever(every=timedelta(seconds=60), stop=stop))
    for _ in range(200):
        if len(await _ids(runtime)) == 4:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert len(await _ids(runtime)) == 4
    with pytest.raises(ValueError, match="every"):
        await services.janitor.run_forever(every=timedelta(0))


async def test_run_janitor_forever_when_the_database_fails_logs_and_keeps_running(
    runtime: Runtime, owner: Owner, monkeypatch: pytest.MonkeyPatch, services: Services
) -> None:
    await _cases(runtime, services, owner)

    async def broken(*args: object, **kwargs: object) -> list[object]:
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(store, "find_janitor_candidates", broken)
    with pytest.raises(DatabaseUnavailable) as info:
        await services.janitor.run()
    assert info.value.code == "database_unavailable"
    stop = asyncio.Event()
    task = asyncio.create_task(
        services.janitor.run_forever(every=timedelta(milliseconds=10), stop=stop)
    )
    await asyncio.sleep(0.1)
    assert not task.done()  # a failed run is logged; the loop waits for the next period
    stop.set()
    await asyncio.wait_for(task, timeout=5)
