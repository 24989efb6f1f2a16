"""The background refresher on a fake clock with a fake provider: a storm of sessions due in
the same minute is worked off, calls that hang delay no other session, each refresh token is
presented once, and shards are shared fairly between replicas and taken over from a dead one."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watchword.clock import FakeClock
from watchword.config import OidcProviderSettings, load_settings
from watchword.federation.client import TokenSet
from watchword.runtime import Runtime
from watchword.secret import Secret
from watchword.services import Services
from watchword.sessions import NewSession

T0 = datetime(2026, 12, 2, 12, tzinfo=UTC)
LIFETIME = timedelta(minutes=5)


@dataclass
class FakeProvider:
    """The upstream side: issues rotating refresh tokens and counts every presentation."""

    name: str
    clock: FakeClock
    slow: set[str] = field(default_factory=set)  # refresh tokens answered after a pause
    hang: set[str] = field(default_factory=set)  # refresh tokens whose call waits for release
    released: asyncio.Event = field(default_factory=asyncio.Event)
    presented: Counter[str] = field(default_factory=Counter)
    hanging_now: int = 0
    serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class FakeUpstream:
    def __init__(self, name: str) -> None:
        self.name = name
        self.issuer = f"https://{name}.example"


class FakeClient:
    """Stands in for OidcClient in the refresher (``settings``, ``provider``, ``refresh``)."""

    def __init__(self, fake: FakeProvider, *, rotating: bool = True) -> None:
        self.fake = fake
        self.provider = FakeUpstream(fake.name)
        self.settings = OidcProviderSettings(
            name=fake.name,
            issuer=self.provider.issuer,
            client_id="c",
            client_secret="s",
            rotating_refresh_tokens=rotating,
        )

    async def refresh(self, refresh_token: Secret) -> TokenSet:
        value = refresh_token.reveal()
        self.fake.presented[value] += 1
        if value in self.fake.hang:
            self.fake.hanging_now += 1
            try:
                await self.fake.released.wait()
            finally:
                self.fake.hanging_now -= 1
        elif value in self.fake.slow:
            await asyncio.sleep(0.02)
        n = next(self.fake.serial)
        return TokenSet(
            access_token=Secret(f"at-{n}"),
            id_token=None,
            refresh_token=Secret(f"{value}+"),
            expires_at=self.fake.clock.now() + LIFETIME,
            scope=None,
        )


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[Any]:
    clock = FakeClock(T0)
    built: list[Services] = []

    async def make(**refresher: Any) -> Services:
        settings = load_settings(
            environ={},
            env="development",
            secret_key="s" * 40,
            database={"url": f"sqlite+aiosqlite:///{tmp_path / 'refresh.sqlite3'}"},
            refresher={"call_timeout": "20s", "lease": "30s", **refresher},
        )
        runtime = Runtime.create(settings, clock=clock)
        await runtime.prepare_schema()
        services = Services.build(runtime)
        built.append(services)
        return services

    make.clock = clock  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        for services in built:
            await services.background.aclose()
            await services.aclose()
            await services.runtime.close()


async def _sessions(services: Services, provider: str, count: int, prefix: str) -> list[str]:
    ids = []
    for i in range(count):
        record, _ = await services.sessions.create(
            NewSession(
                provider=provider,
                issuer=f"https://{provider}.example",
                subject=f"{prefix}{i}",
                upstream_sid=None,
                email=None,
                display_name=None,
                claims={"sub": f"{prefix}{i}"},
                organization_ids=[],
                access_token=Secret(f"at-{prefix}{i}"),
                refresh_token=Secret(f"rt-{prefix}{i}"),
                id_token=None,
                access_expires_at=services.runtime.clock.now() + LIFETIME,
            )
        )
        ids.append(record.id)
    return ids


async def test_a_storm_is_worked_off_and_hanging_calls_delay_no_other_session(
    replicas: Any,
) -> None:
    services: Services = await replicas(
        pool_size=16, per_provider_limit=8, call_timeout="120s", lease="300s"
    )
    clock: FakeClock = replicas.clock
    good = FakeProvider("good", clock)
    stuck = FakeProvider("stuck", clock)
    services.signin.clients["good"] = FakeClient(good)  # type: ignore[assignment]
    services.signin.clients["stuck"] = FakeClient(stuck)  # type: ignore[assignment]
    good_ids = await _sessions(services, "good", 300, "g")
    stuck_ids = await _sessions(services, "stuck", 12, "s")
    good.slow = {f"rt-g{i}" for i in range(0, 300, 3)}
    good.hang = {f"rt-g{i}" for i in (1, 2, 4)}  # a few hang at the good provider too
    stuck.hang = {f"rt-s{i}" for i in range(12)}  # this provider hangs on every call

    clock.advance(LIFETIME - timedelta(seconds=50))  # everything is inside the grace period
    await services.background.run_pass()
    assert len(services.background.held) == services.background.shards  # alone: every shard

    hanging = good.hang | stuck.hang

    # Wait (no clock involved) until every call that does not hang has finished.
    async def settled() -> None:
        # Polls the fakes' counters (no event to wait on); bounded by wait_for below.
        while sum(good.presented.values()) < 300 or stuck.hanging_now < 8:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        while len(services.background._in_flight) > len(hanging):  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(settled(), timeout=60)
    # The hanging calls are still hanging, and every other session is already fresh.
    assert good.hanging_now == 3 and stuck.hanging_now == 8  # the stuck provider's limit
    fresh = await _states(services, good_ids)
    for index, session_id in enumerate(good_ids):
        if f"rt-g{index}" in hanging:
            continue
        assert fresh[session_id]["refreshed"], index
        assert fresh[session_id]["expires_at"] > clock.now() + LIFETIME - timedelta(seconds=1)

    good.released.set()
    stuck.released.set()
    await asyncio.wait_for(services.background.drain(), timeout=60)
    await services.background.run_pass()  # the four stuck calls that waited for a slot
    await asyncio.wait_for(services.background.drain(), timeout=60)
    every = await _states(services, good_ids + stuck_ids)
    assert all(state["refreshed"] for state in every.values())
    assert max(good.presented.values()) == 1 and max(stuck.presented.values()) == 1


async def _states(services: Services, ids: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for session_id in ids:
        record = await services.sessions.get(session_id)
        out[session_id] = {
            "refreshed": record.refreshed_at is not None,
            "expires_at": record.access_expires_at,
            "state": record.state,
        }
    return out


async def test_replicas_share_the_shards_fairly_and_take_over_a_dead_ones(
    replicas: Any,
) -> None:
    a: Services = await replicas(shards=8)
    b: Services = await replicas(shards=8)
    clock: FakeClock = replicas.clock
    await a.background.run_pass()
    assert len(a.background.held) == 8
    await b.background.run_pass()  # two members now, but every shard is held
    assert len(b.background.held) == 0
    await a.background.run_pass()  # a sees two members: hands half over
    await b.background.run_pass()
    assert len(a.background.held) == 4 and len(b.background.held) == 4
    assert set(a.background.held).isdisjoint(b.background.held)

    # a dies (stops renewing and heart-beating): within a lease, b holds everything.
    clock.advance(timedelta(seconds=31))
    await b.background.run_pass()
    assert len(b.background.held) == 8


async def test_every_session_is_refreshed_once_per_cycle_across_two_replicas(
    replicas: Any,
) -> None:
    a: Services = await replicas(shards=8)
    b: Services = await replicas(shards=8)
    clock: FakeClock = replicas.clock
    fake = FakeProvider("good", clock)
    for services in (a, b):
        services.signin.clients["good"] = FakeClient(fake)  # type: ignore[assignment]
    ids = await _sessions(a, "good", 120, "x")
    for _ in range(2):
        await a.background.run_pass()
        await b.background.run_pass()
    for cycle in range(3):
        clock.advance(LIFETIME - timedelta(seconds=50) if cycle == 0 else LIFETIME)
        for services in (a, b, a, b):
            await services.background.run_pass()
        await a.background.drain()
        await b.background.drain()
        # Each session's current refresh token was presented exactly once this cycle.
        assert len(fake.presented) == 120 * (cycle + 1)
        assert set(fake.presented.values()) == {1}
    states = await _states(a, ids)
    assert all(s["state"] == "active" for s in states.values())


async def test_a_pass_that_loses_the_database_is_retried_not_the_end_of_the_refresher(
    replicas: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL answering "sorry, too many clients already" surfaces from SQLAlchemy as an
    # OperationalError: the loop used to let it end the job (and `watchword worker` with it).
    from sqlalchemy.exc import OperationalError

    services: Services = await replicas()
    background = services.background
    passes = 0
    stop = asyncio.Event()
    real_pass = background.run_pass

    async def flaky_pass() -> float:
        nonlocal passes
        passes += 1
        if passes == 1:
            raise OperationalError("connect", {}, Exception("too many clients already"))
        stop.set()
        return await real_pass()

    monkeypatch.setattr(background, "_poll", timedelta(milliseconds=10))
    monkeypatch.setattr(background, "run_pass", flaky_pass)
    async with asyncio.timeout(10):
        await background.run(stop=stop)
    assert passes == 2
