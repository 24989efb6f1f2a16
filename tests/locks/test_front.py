"""The front object over the memory backend: validation, hold/release on errors, renew."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

import watchword.locks
from watchword.clock import FakeClock
from watchword.errors import LockTimeout, RedisUnavailable
from watchword.locks import Attempt, Lease, LockLost, LockMetrics, Locks, MemoryBackend

TTL = timedelta(seconds=10)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(clock: FakeClock) -> MemoryBackend:
    return MemoryBackend(clock)


def test_locks_public_names_are_exported_and_importable() -> None:
    for name in watchword.locks.__all__:
        assert hasattr(watchword.locks, name), name
    assert {"Locks", "Lease", "LockBackend", "refresh_once", "open_backend"} <= set(
        watchword.locks.__all__
    )


@pytest.mark.parametrize(
    ("key", "ttl", "wait"),
    [
        ("", TTL, TTL),
        ("k" * 201, TTL, TTL),
        ("k", timedelta(0), TTL),
        ("k", TTL, timedelta(seconds=-1)),
    ],
)
async def test_locks_acquire_invalid_arguments_raise_value_error(
    backend: MemoryBackend, key: str, ttl: timedelta, wait: timedelta
) -> None:
    with pytest.raises(ValueError, match=r"key|ttl|wait"):
        await Locks(backend).acquire(key, ttl=ttl, wait=wait)


async def test_locks_hold_releases_when_body_raises(backend: MemoryBackend) -> None:
    locks = Locks(backend)
    with pytest.raises(RuntimeError, match="boom"):
        async with locks.hold("k", ttl=TTL, wait=timedelta(0)):
            raise RuntimeError("boom")
    assert backend.holder_of("k") is None


async def test_locks_hold_releases_when_task_cancelled(backend: MemoryBackend) -> None:
    locks = Locks(backend)
    entered = asyncio.Event()

    async def body() -> None:
        async with locks.hold("k", ttl=TTL, wait=timedelta(0)):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(body())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert backend.holder_of("k") is None


async def test_locks_zero_wait_on_held_key_times_out_at_once(backend: MemoryBackend) -> None:
    locks = Locks(backend)
    async with locks.hold("k", ttl=TTL, wait=timedelta(0)):
        with pytest.raises(LockTimeout) as info:
            await locks.acquire("k", ttl=TTL, wait=timedelta(0))
    assert info.value.key == "k"
    assert info.value.code == "lock_timeout"


async def test_locks_renew_after_takeover_raises_lock_lost(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    locks = Locks(backend)
    first = await locks.acquire("k", ttl=TTL, wait=timedelta(0))
    clock.advance(TTL)
    second = await locks.acquire("k", ttl=TTL, wait=timedelta(0))
    with pytest.raises(LockLost) as info:
        await locks.renew(first, TTL)
    assert info.value.code == "lock_lost"
    assert info.value.fence == first.fence
    assert (await locks.renew(second, TTL * 2)).expires_at == clock.now() + TTL * 2


async def test_locks_release_of_lost_lease_counts_not_held(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    registry = CollectorRegistry()
    locks = Locks(backend, metrics=LockMetrics(registry))
    lease = await locks.acquire("k", ttl=TTL, wait=timedelta(0))
    clock.advance(TTL)
    assert not await locks.release(lease)
    labels = {"backend": "memory", "outcome": "not_held"}
    assert registry.get_sample_value("watchword_lock_releases_total", labels) == 1.0


async def test_locks_many_waiters_each_get_a_turn_in_fence_order(backend: MemoryBackend) -> None:
    locks = Locks(backend)
    seen: list[Lease] = []

    async def one() -> None:
        async with locks.hold("k", ttl=TTL, wait=timedelta(seconds=30)) as lease:
            seen.append(lease)
            await asyncio.sleep(0)

    async with asyncio.timeout(10):
        await asyncio.gather(*(one() for _ in range(50)))
    assert [lease.fence for lease in seen] == list(range(1, 51))


def test_lock_metrics_on_two_registries_do_not_clash() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    LockMetrics(first).acquired("memory", 0.01, broken=True)
    LockMetrics(second)
    labels = {"backend": "memory"}
    assert first.get_sample_value("watchword_lock_broken_leases_total", labels) == 1.0
    assert second.get_sample_value("watchword_lock_broken_leases_total", labels) is None


class CountingBackend(MemoryBackend):
    """The real memory backend, counting the compare-and-swap attempts it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def try_acquire(self, key: str, holder: str, ttl: timedelta) -> Attempt:
        self.attempts += 1
        return await super().try_acquire(key, holder, ttl)


async def test_locks_local_waiters_queue_so_one_release_costs_one_attempt() -> None:
    backend = CountingBackend()
    locks = Locks(backend)
    lease = await locks.acquire("k", ttl=TTL, wait=timedelta(0))
    waiters = [
        asyncio.create_task(locks.acquire("k", ttl=TTL, wait=timedelta(seconds=30)))
        for _ in range(20)
    ]
    await asyncio.sleep(0.05)
    # Only the head of the local queue has tried; the other 19 wait in-process.
    assert backend.attempts == 2
    await locks.release(lease)
    await asyncio.sleep(0.05)
    assert backend.attempts == 4  # the head won; the next in line tried once and waits
    done = [task for task in waiters if task.done()]
    assert len(done) == 1
    for task in waiters:
        task.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)


class ReleaseOutage(MemoryBackend):
    """The memory backend whose releases fail as an unreachable server's would."""

    async def release(self, lease: Lease) -> bool:
        raise RedisUnavailable("Redis lock backend failed (ConnectionError)")


async def test_locks_hold_unreachable_backend_at_release_keeps_body_result() -> None:
    registry = CollectorRegistry()
    backend = ReleaseOutage()
    locks = Locks(backend, metrics=LockMetrics(registry))
    async with locks.hold("k", ttl=TTL, wait=timedelta(0)) as lease:
        result = lease.fence
    assert result == 1
    labels = {"backend": "memory", "outcome": "error"}
    assert registry.get_sample_value("watchword_lock_releases_total", labels) == 1.0
    # The lease was not released: it stays until it expires.
    assert backend.holder_of("k") == lease
