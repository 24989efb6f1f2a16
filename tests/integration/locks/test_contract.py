"""The lock contract, run against every backend (memory, SQLite, Redis, PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from watchword.errors import LockTimeout
from watchword.locks import (
    Lease,
    LockBackend,
    LockLost,
    LockMetrics,
    Locks,
    RefreshSteps,
    new_holder_id,
    refresh_once,
)

LONG = timedelta(seconds=30)
SHORT = timedelta(milliseconds=150)


def _stranger(lease: Lease) -> Lease:
    return Lease(lease.key, new_holder_id(), lease.fence, lease.expires_at)


async def _take(backend: LockBackend, key: str, ttl: timedelta = LONG) -> Lease:
    attempt = await backend.try_acquire(key, new_holder_id(), ttl)
    assert attempt.lease is not None
    return attempt.lease


async def test_backend_free_key_grants_lease_expiring_after_ttl(
    backend: LockBackend, key: str
) -> None:
    holder = new_holder_id()
    before = datetime.now(UTC)
    attempt = await backend.try_acquire(key, holder, LONG)
    assert attempt.lease is not None
    assert attempt.lease.key == key and attempt.lease.holder == holder
    assert attempt.lease.fence >= 1
    assert not attempt.broken
    # Server clocks may differ a little from ours; a minute of slack keeps it honest.
    assert before + LONG - timedelta(minutes=1) < attempt.lease.expires_at
    assert attempt.lease.expires_at < before + LONG + timedelta(minutes=1)


async def test_backend_held_key_refuses_second_holder_with_retry_hint(
    backend: LockBackend, key: str
) -> None:
    await _take(backend, key)
    attempt = await backend.try_acquire(key, new_holder_id(), LONG)
    assert attempt.lease is None
    assert attempt.retry_after is not None
    assert timedelta(0) < attempt.retry_after <= LONG


async def test_backend_release_by_holder_frees_key_and_next_fence_grows(
    backend: LockBackend, key: str
) -> None:
    first = await _take(backend, key)
    assert await backend.release(first)
    attempt = await backend.try_acquire(key, new_holder_id(), LONG)
    assert attempt.lease is not None
    assert attempt.lease.fence > first.fence
    assert not attempt.broken


async def test_backend_release_by_stranger_changes_nothing(backend: LockBackend, key: str) -> None:
    lease = await _take(backend, key)
    assert not await backend.release(_stranger(lease))
    assert (await backend.try_acquire(key, new_holder_id(), LONG)).lease is None
    assert await backend.release(lease)


async def test_backend_release_with_stale_fence_changes_nothing(
    backend: LockBackend, key: str
) -> None:
    lease = await _take(backend, key)
    stale = Lease(key, lease.holder, lease.fence - 1, lease.expires_at)
    assert not await backend.release(stale)
    assert (await backend.try_acquire(key, new_holder_id(), LONG)).lease is None


async def test_backend_second_release_says_not_held(backend: LockBackend, key: str) -> None:
    lease = await _take(backend, key)
    assert await backend.release(lease)
    assert not await backend.release(lease)


async def test_backend_renew_by_holder_extends_and_by_stranger_refused(
    backend: LockBackend, key: str
) -> None:
    # Taken for LONG, not SHORT: a renewal that must land within a short lease would fail
    # by luck whenever a loaded machine stalls the test for that long.
    lease = await _take(backend, key)
    renewed = await backend.renew(lease, LONG * 2)
    assert renewed is not None
    assert renewed.fence == lease.fence and renewed.holder == lease.holder
    assert renewed.expires_at > lease.expires_at
    assert await backend.renew(_stranger(lease), LONG * 2) is None
    assert (await backend.try_acquire(key, new_holder_id(), LONG)).lease is None


async def test_backend_renew_sets_the_expiry_the_backend_enforces(
    backend: LockBackend, key: str
) -> None:
    # A renewal to now + SHORT replaces the LONG expiry: the backend enforces the renewed
    # one (in the direction a stall cannot make fail: it only lets more time pass).
    lease = await _take(backend, key)
    renewed = await backend.renew(lease, SHORT)
    assert renewed is not None and renewed.expires_at < lease.expires_at
    await asyncio.sleep(SHORT.total_seconds() * 2)
    attempt = await backend.try_acquire(key, new_holder_id(), LONG)
    assert attempt.lease is not None and attempt.broken
    assert await backend.renew(renewed, LONG) is None


async def test_backend_expired_lease_is_taken_over_and_counted_broken(
    backend: LockBackend, key: str
) -> None:
    old = await _take(backend, key, SHORT)
    await asyncio.sleep(SHORT.total_seconds() * 2)
    attempt = await backend.try_acquire(key, new_holder_id(), LONG)
    assert attempt.lease is not None
    assert attempt.broken
    assert attempt.lease.fence > old.fence
    assert not await backend.release(old)
    assert await backend.renew(old, LONG) is None
    assert await backend.release(attempt.lease)


async def test_backend_expired_unreleased_lease_cannot_be_renewed(
    backend: LockBackend, key: str
) -> None:
    old = await _take(backend, key, SHORT)
    await asyncio.sleep(SHORT.total_seconds() * 2)
    assert await backend.renew(old, LONG) is None
    assert not await backend.release(old)


async def test_backend_fences_strictly_increase_over_grants(backend: LockBackend, key: str) -> None:
    fences = []
    for _ in range(20):
        lease = await _take(backend, key)
        fences.append(lease.fence)
        assert await backend.release(lease)
    assert fences == sorted(set(fences))


async def test_backend_keys_are_independent(backend: LockBackend, key: str) -> None:
    await _take(backend, key)
    other = await _take(backend, key + "-other")
    assert other.key == key + "-other"


async def test_locks_wait_past_limit_raises_timeout_naming_key(
    backend: LockBackend, key: str
) -> None:
    locks = Locks(backend)
    await _take(backend, key)
    with pytest.raises(LockTimeout) as info:
        await locks.acquire(key, ttl=LONG, wait=timedelta(milliseconds=50))
    assert info.value.key == key
    assert info.value.waited_s >= 0.05
    assert key in str(info.value)


async def test_locks_waiter_woken_by_release_not_by_polling(
    backend_factory: Callable[[], LockBackend], key: str
) -> None:
    # The fallback poll and the lease are far longer than the test's own limit, so
    # only the release announcement (in-process, pub/sub, NOTIFY, or SQLite's short
    # read poll) can let the waiter in in time.
    holder = Locks(backend_factory())
    waiter = Locks(backend_factory(), fallback_poll=timedelta(seconds=60))
    lease = await holder.acquire(key, ttl=timedelta(seconds=60), wait=timedelta(0))
    got: asyncio.Task[Lease] = asyncio.create_task(
        waiter.acquire(key, ttl=LONG, wait=timedelta(seconds=60))
    )
    await asyncio.sleep(0.2)
    assert not got.done()
    assert await holder.release(lease)
    async with asyncio.timeout(10):
        second = await got
    assert second.fence > lease.fence
    await waiter.release(second)


async def test_locks_waiter_takes_over_after_expiry_without_release(
    backend: LockBackend, key: str
) -> None:
    registry = CollectorRegistry()
    locks = Locks(backend, metrics=LockMetrics(registry), fallback_poll=timedelta(seconds=60))
    dead = await locks.acquire(key, ttl=timedelta(milliseconds=300), wait=timedelta(0))
    async with asyncio.timeout(10):
        lease = await locks.acquire(key, ttl=LONG, wait=timedelta(seconds=30))
    assert lease.fence > dead.fence
    labels = {"backend": backend.name}
    assert registry.get_sample_value("watchword_lock_broken_leases_total", labels) == 1.0
    assert not await locks.release(dead)
    with pytest.raises(LockLost):
        await locks.renew(dead, LONG)


async def test_locks_hold_serialises_concurrent_tasks(
    backend_factory: Callable[[], LockBackend], key: str
) -> None:
    inside = 0
    overlaps = 0
    fences: list[int] = []

    async def worker(locks: Locks) -> None:
        nonlocal inside, overlaps
        for _ in range(5):
            async with locks.hold(key, ttl=LONG, wait=timedelta(seconds=30)) as lease:
                inside += 1
                overlaps += inside > 1
                fences.append(lease.fence)
                await asyncio.sleep(0.001)
                inside -= 1

    fronts = [Locks(backend_factory()) for _ in range(3)]
    async with asyncio.timeout(60):
        await asyncio.gather(*(worker(fronts[i % 3]) for i in range(12)))
    assert overlaps == 0
    assert len(fences) == 60
    assert fences == sorted(set(fences))


async def test_locks_metrics_count_outcomes(backend: LockBackend, key: str) -> None:
    registry = CollectorRegistry()
    locks = Locks(backend, metrics=LockMetrics(registry))
    async with locks.hold(key, ttl=LONG, wait=timedelta(0)):
        with pytest.raises(LockTimeout):
            await locks.acquire(key, ttl=LONG, wait=timedelta(milliseconds=10))
    name = backend.name

    def sample(metric: str, **labels: str) -> float | None:
        return registry.get_sample_value(metric, {"backend": name, **labels})

    assert sample("watchword_lock_acquisitions_total", outcome="acquired") == 1.0
    assert sample("watchword_lock_acquisitions_total", outcome="timeout") == 1.0
    assert sample("watchword_lock_wait_seconds_count") == 2.0
    assert sample("watchword_lock_hold_seconds_count") == 1.0
    assert sample("watchword_lock_releases_total", outcome="released") == 1.0


async def _take_when_expired(backend: LockBackend, key: str) -> Lease:
    """Take ``key`` as soon as its current lease runs out (however long that takes)."""
    async with asyncio.timeout(30):  # a liveness bound, not a measurement
        while True:
            attempt = await backend.try_acquire(key, new_holder_id(), LONG)
            if attempt.lease is not None:
                return attempt.lease
            left = attempt.retry_after or SHORT
            await asyncio.sleep(min(left.total_seconds(), SHORT.total_seconds()))


async def test_refresh_once_lease_lost_before_upstream_call_never_calls_it(
    backend_factory: Callable[[], LockBackend], key: str
) -> None:
    locks, successor = Locks(backend_factory()), backend_factory()
    calls: list[int] = []
    taken: list[Lease] = []

    async def load() -> int:
        # Under the lock: stall until the lease expired and a successor took it over.
        taken.append(await _take_when_expired(successor, key))
        return 0

    async def upstream(current: int) -> int:
        calls.append(current)
        return current + 1

    async def store(fresh: int, fence: int) -> bool:
        return True  # accepts anything: only the lease check can keep the upstream out

    steps = RefreshSteps(load, lambda current: current < 1, upstream, store)
    with pytest.raises(LockLost):
        await refresh_once(locks, key, steps, ttl=SHORT, wait=timedelta(0), check_first=False)
    assert calls == []
    assert await successor.release(taken[0])  # still the successor's, untouched
