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
from sqlalchemy import event, select, update

from watchword.clock import FakeClock
from watchword.config import OidcProviderSettings, load_settings
from watchword.errors import ProviderUnavailable
from watchword.federation.client import TokenSet
from watchword.runtime import Runtime
from watchword.secret import Secret
from watchword.services import Services
from watchword.sessions import NewSession, store
from watchword.sessions.refresh import Outcome
from watchword.sessions.sealing import SealedColumn
from watchword.sessions.store import in_shards
from watchword.sessions.tables import sessions

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

    async def metadata(self) -> None:  # discovery: cached, nothing to fetch here
        return None


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

    async def make(sessions: dict[str, Any] | None = None, **refresher: Any) -> Services:
        settings = load_settings(
            environ={},
            env="development",
            secret_key="s" * 40,
            database={"url": f"sqlite+aiosqlite:///{tmp_path / 'refresh.sqlite3'}"},
            refresher={"call_timeout": "20s", "lease": "30s", **refresher},
            sessions=sessions or {},
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
    # A pass claims what the pool (16) can start; the loop claims again as slots free up.
    async def settled() -> None:
        # Polls the fakes' counters (no event to wait on); bounded by wait_for below.
        while sum(good.presented.values()) < 300 or stuck.hanging_now < 8:
            await services.background.run_pass()
            await asyncio.sleep(0.01)
        # Only the calls hanging right now are in flight then: 3 at the good provider and
        # 8 at the stuck one (its limit; its other 4 are not claimed yet), not len(hanging)
        # (15), which let up to 4 finishing calls pass as settled on a loaded machine.
        while len(services.background._in_flight) > good.hanging_now + stuck.hanging_now:  # noqa: ASYNC110
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
    for _ in range(5):  # the stuck provider's calls that waited for a slot
        await services.background.run_pass()
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
        for _ in range(20):  # a pass claims what each replica's per-provider limit allows
            for services in (a, b, a, b):
                await services.background.run_pass()
            await a.background.drain()
            await b.background.drain()
            if len(fake.presented) >= 120 * (cycle + 1):
                break
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


# --- the row's claim: the refresh-once lock of a session ---------------------------------------


async def _due_session(
    replicas: Any, prefix: str, *, processes: int = 2, rotating: bool = True
) -> tuple[list[Services], FakeClock, FakeProvider, str]:
    """``processes`` replicas on one database, all knowing one fake provider, and one session
    of it inside its refresh window."""
    made = [await replicas() for _ in range(processes)]
    clock: FakeClock = replicas.clock
    fake = FakeProvider("good", clock)
    for services in made:
        services.signin.clients["good"] = FakeClient(fake, rotating=rotating)
    [session_id] = await _sessions(made[0], "good", 1, prefix)
    clock.advance(LIFETIME - timedelta(seconds=50))
    return made, clock, fake, session_id


async def _database_gone(*_: Any, **__: Any) -> None:
    raise RuntimeError("the database went away")


def _all() -> Any:
    return in_shards(range(16), 16, dialect="sqlite")


async def test_a_holder_whose_lease_lapsed_and_was_taken_over_never_calls(
    replicas: Any,
) -> None:
    [a, b], clock, fake, session_id = await _due_session(replicas, "l", processes=2)
    [claim] = await a.refresher.claim_due(_all(), clock.now(), 10, provider="good")
    # Nobody else may claim it while its lease runs, on demand or in the background.
    assert await b.refresher.claim_due(_all(), clock.now(), 10, provider="good") == []
    assert await b.refresher.claim_abandoned(_all(), clock.now(), 10) == []

    clock.advance(a.refresher.lease + timedelta(seconds=1))  # A stalled past its lease
    [taken] = await b.refresher.claim_abandoned(_all(), clock.now(), 10)
    assert taken.took_over and taken.fence == claim.fence + 1
    resolved = await b.refresher.run(taken)
    assert resolved.outcome is Outcome.INTERRUPTED  # A may have sent it: never replayed
    late = await a.refresher.run(claim)  # A wakes up: its lease check refuses the call
    assert late.outcome is Outcome.LOST
    assert sum(fake.presented.values()) == 0
    record = await a.sessions.get(session_id)
    assert record.state == "reauth_required"
    assert (record.state_reason or "").startswith("refresh_interrupted")


async def test_a_holder_whose_lease_lapsed_does_not_call_and_releases_its_claim(
    replicas: Any,
) -> None:
    [a], clock, fake, session_id = await _due_session(replicas, "r", processes=1)
    [claim] = await a.refresher.claim_due(_all(), clock.now(), 10, provider="good")
    clock.advance(a.refresher.lease + timedelta(seconds=1))
    # Its lease is over (another process may be taking it over now): no call; and as
    # nothing was sent, the claim is released rather than left to be interrupted.
    late = await a.refresher.run(claim)
    assert late.outcome is Outcome.LOST and sum(fake.presented.values()) == 0
    row = await _row(a, session_id)
    assert row["intent_fence"] is None and row["lease_until"] is None
    assert row["lease_holder"] is None and row["state"] == "active"
    done = await a.refresher.refresh(session_id)  # due again: refreshed once, normally
    assert done.outcome is Outcome.REFRESHED and fake.presented["rt-r0"] == 1


async def test_a_takeover_decided_on_a_stale_read_loses_to_the_holders_renewal(
    replicas: Any,
) -> None:
    [a, b], clock, _, session_id = await _due_session(replicas, "t", processes=2)
    [claim] = await a.refresher.claim_due(_all(), clock.now(), 10, provider="good")
    clock.advance(a.refresher.lease - timedelta(seconds=1))
    seen = await b.refresher._read(session_id)  # B looks: the lease is about to end
    await a.refresher._ensure_lease(claim, a.refresher.lease * 2)  # A renews just in time
    clock.advance(timedelta(seconds=2))  # the lease B saw is over; the renewed one is not
    assert seen is not None
    assert await b.refresher._claim_one(seen, clock.now(), took_over=True) is None
    row = await _row(a, session_id)
    assert row["fence"] == claim.fence and row["intent_fence"] == claim.fence


async def test_a_claim_that_fails_before_sending_is_released_not_interrupted(
    replicas: Any,
) -> None:
    [a], clock, fake, session_id = await _due_session(replicas, "f", processes=1)
    [claim] = await a.refresher.claim_due(_all(), clock.now(), 10, provider="good")

    a.refresher._ensure_lease = _database_gone  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await a.refresher.run(claim)
    row = await _row(a, session_id)
    assert row["intent_fence"] is None and row["state"] == "active"
    assert sum(fake.presented.values()) == 0


@pytest.mark.parametrize("rotating", [True, False])
async def test_the_background_resolves_a_claim_whose_holder_died(
    replicas: Any, rotating: bool
) -> None:
    [dead, alive], clock, fake, session_id = await _due_session(
        replicas, "d", processes=2, rotating=rotating
    )
    [claim] = await dead.refresher.claim_due(_all(), clock.now(), 10, provider="good")
    row = await _row(alive, session_id)
    assert row["lease_holder"] == dead.refresher.holder and row["intent_fence"] == claim.fence
    # The holder is gone (it never records an outcome); within its lease nothing happens.
    await alive.background.run_pass()
    await alive.background.drain()
    assert (await _row(alive, session_id))["intent_fence"] == claim.fence
    clock.advance(dead.refresher.lease + timedelta(seconds=1))
    await alive.background.run_pass()
    await alive.background.drain()
    row = await _row(alive, session_id)
    assert row["intent_fence"] is None and row["lease_until"] is None
    if rotating:  # the token may have been spent: a new sign-in, never a replay
        assert row["state"] == "reauth_required" and sum(fake.presented.values()) == 0
        assert str(row["state_reason"]).startswith("refresh_interrupted")
    else:  # presenting it again is harmless: refreshed
        assert row["state"] == "active" and fake.presented["rt-d0"] == 1
        assert row["refreshed_at"] is not None


async def test_a_waiter_gets_the_winners_result_and_never_refreshes_again(
    replicas: Any,
) -> None:
    [a, b], clock, fake, session_id = await _due_session(replicas, "w", processes=2)
    [claim] = await a.refresher.claim_due(_all(), clock.now(), 10, provider="good")
    waiter = asyncio.create_task(b.refresher.refresh(session_id))
    await asyncio.sleep(0.1)
    assert not waiter.done()  # it waits for A's outcome
    won = await a.refresher.run(claim)
    assert won.outcome is Outcome.REFRESHED
    got = await asyncio.wait_for(waiter, timeout=10)
    assert got.outcome is Outcome.NOT_DUE and got.record is not None
    assert got.record.refreshed_at is not None
    assert fake.presented == Counter({"rt-w0": 1})


async def test_outcomes_finishing_together_share_one_commit_and_a_stale_one_is_refused(
    replicas: Any,
) -> None:
    a: Services = await replicas()
    clock: FakeClock = replicas.clock
    a.signin.clients["good"] = FakeClient(FakeProvider("good", clock))  # type: ignore[assignment]
    ids = await _sessions(a, "good", 3, "c")
    clock.advance(LIFETIME - timedelta(seconds=50))
    claims = await a.refresher.claim_due(_all(), clock.now(), 10, provider="good")
    fences = {c.session_id: c.fence for c in claims}
    async with a.runtime.engine.begin() as conn:  # another holder claimed ids[1] since
        await conn.execute(
            update(sessions).where(sessions.c.id == ids[1]).values(fence=fences[ids[1]] + 1)
        )
    commits = 0

    def count(*_: Any) -> None:
        nonlocal commits
        commits += 1

    event.listen(a.runtime.engine.sync_engine, "commit", count)
    try:
        written = await asyncio.gather(
            *(a.refresher._write(i, fences[i], last_error=f"e-{i}") for i in ids)
        )
    finally:
        event.remove(a.runtime.engine.sync_engine, "commit", count)
    assert written == [True, False, True] and commits == 1
    rows = {i: await _row(a, i) for i in ids}
    assert rows[ids[0]]["last_error"] == f"e-{ids[0]}" and rows[ids[1]]["last_error"] is None


async def _row(services: Services, session_id: str) -> dict[str, Any]:
    async with services.runtime.engine.connect() as conn:
        found = (await conn.execute(select(sessions).where(sessions.c.id == session_id))).one()
    return dict(found._mapping)


async def test_a_key_rotation_that_read_a_row_before_its_refresh_cannot_put_the_old_tokens_back(
    replicas: Any,
) -> None:
    old_key = {"id": "k1", "key": "1" * 40}
    refreshing: Services = await replicas(sessions={"keys": [old_key]})
    rotating: Services = await replicas(sessions={"keys": [{"id": "k2", "key": "2" * 40}, old_key]})
    clock: FakeClock = replicas.clock
    fake = FakeProvider("good", clock)
    refreshing.signin.clients["good"] = FakeClient(fake)  # type: ignore[assignment]
    [session_id] = await _sessions(refreshing, "good", 1, "k")
    clock.advance(LIFETIME - timedelta(seconds=50))
    # The rotation reads the row (sealed under k1) ...
    async with rotating.runtime.engine.connect() as conn:
        [stale] = await store.rows_to_reseal(conn, primary_key_id="k2", limit=10)
    # ... a refresh lands meanwhile (the provider rotated the refresh token) ...
    done = await refreshing.refresher.refresh(session_id)
    assert done.outcome is Outcome.REFRESHED
    # ... and the rotation's write of what it read is refused (it retries with the new row).
    sealer = rotating.sessions.sealer
    resealed = {
        column: sealer.reseal(getattr(stale, column), session_id=session_id, column=column)
        for column in (SealedColumn.ACCESS_TOKEN, SealedColumn.REFRESH_TOKEN)
    }
    async with rotating.runtime.engine.begin() as conn:
        written = await store.update_sealed(conn, stale, key_id="k2", id_token=None, **resealed)
    assert not written
    row = await _row(rotating, session_id)
    token = sealer.open(
        row["refresh_token"], session_id=session_id, column=SealedColumn.REFRESH_TOKEN
    )
    assert token.reveal() == "rt-k0+"  # the rotated token, not the spent one
    assert await rotating.sessions.reseal_batch(limit=10) == (1, 0)  # the next batch does it


async def test_a_takeover_that_fails_to_record_keeps_the_dead_holders_intent(
    replicas: Any,
) -> None:
    [dead, alive], clock, fake, session_id = await _due_session(replicas, "x", processes=2)
    await dead.refresher.claim_due(_all(), clock.now(), 10, provider="good")
    clock.advance(dead.refresher.lease + timedelta(seconds=1))
    [taken] = await alive.refresher.claim_abandoned(_all(), clock.now(), 10)

    alive.refresher._conclude = _database_gone  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await alive.refresher.run(taken)
    # Not released: the intent still says a token may have gone out; never presented again.
    row = await _row(alive, session_id)
    assert row["intent_fence"] == taken.fence and sum(fake.presented.values()) == 0


async def test_discovery_failing_before_the_call_is_temporary_and_sends_nothing(
    replicas: Any,
) -> None:
    [a], _, fake, session_id = await _due_session(replicas, "m", processes=1)

    async def discovery_down() -> None:
        raise ProviderUnavailable("provider 'good' discovery failed")

    a.signin.clients["good"].provider.metadata = discovery_down  # type: ignore[method-assign,assignment]
    result = await a.refresher.refresh(session_id)
    assert result.outcome is Outcome.TEMPORARY and sum(fake.presented.values()) == 0
    row = await _row(a, session_id)
    assert row["state"] == "active" and row["intent_fence"] is None
    assert row["refresh_failures"] == 1 and "discovery" in str(row["last_error"])
