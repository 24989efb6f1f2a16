"""The memory backend against a model, driven by Hypothesis: grants, releases by the
holder and by strangers, renewals, and a fake clock pushed past expiry."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from watchword.clock import FakeClock
from watchword.locks import Lease, MemoryBackend, new_holder_id

KEYS = ("a", "b", "c")
ttls = st.integers(min_value=1, max_value=5_000).map(lambda ms: timedelta(milliseconds=ms))


@dataclass
class _Model:
    """Per key: the newest fence, and the current lease (live or expired) if any."""

    fence: int = 0
    lease: Lease | None = None

    def live(self, now: datetime) -> Lease | None:
        if self.lease is not None and self.lease.expires_at > now:
            return self.lease
        return None


class MemoryLocks(RuleBasedStateMachine):
    leases = Bundle("leases")

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.clock = FakeClock()
        self.backend = MemoryBackend(self.clock)
        self.model = {key: _Model() for key in KEYS}
        self.broken = 0

    def teardown(self) -> None:
        self.runner.close()

    @rule(target=leases, key=st.sampled_from(KEYS), ttl=ttls)
    def acquire(self, key: str, ttl: timedelta) -> Lease | None:
        model = self.model[key]
        now = self.clock.now()
        attempt = self.runner.run(self.backend.try_acquire(key, new_holder_id(), ttl))
        live = model.live(now)
        if live is not None:
            assert attempt.lease is None
            assert attempt.retry_after == live.expires_at - now
            return None
        assert attempt.lease is not None
        assert attempt.lease.fence == model.fence + 1
        assert attempt.lease.expires_at == now + ttl
        assert attempt.broken == (model.lease is not None)
        self.broken += attempt.broken
        model.fence = attempt.lease.fence
        model.lease = attempt.lease
        return attempt.lease

    @rule(lease=consumes(leases))
    def release_by_holder(self, lease: Lease | None) -> None:
        if lease is None:
            return
        model = self.model[lease.key]
        live = model.live(self.clock.now())
        expected = live is not None and (live.holder, live.fence) == (lease.holder, lease.fence)
        assert self.runner.run(self.backend.release(lease)) is expected
        if expected:
            model.lease = None

    @rule(lease=leases)
    def release_by_stranger(self, lease: Lease | None) -> None:
        if lease is None:
            return
        stranger = Lease(lease.key, new_holder_id(), lease.fence, lease.expires_at)
        assert self.runner.run(self.backend.release(stranger)) is False

    @rule(lease=leases, ttl=ttls)
    def renew(self, lease: Lease | None, ttl: timedelta) -> None:
        if lease is None:
            return
        model = self.model[lease.key]
        now = self.clock.now()
        live = model.live(now)
        renewed = self.runner.run(self.backend.renew(lease, ttl))
        if live is not None and (live.holder, live.fence) == (lease.holder, lease.fence):
            assert renewed == Lease(lease.key, lease.holder, lease.fence, now + ttl)
            model.lease = renewed
        else:
            assert renewed is None

    @rule(ms=st.integers(min_value=0, max_value=6_000))
    def advance(self, ms: int) -> None:
        self.clock.advance(timedelta(milliseconds=ms))

    @invariant()
    def one_live_holder_per_key_matches_model(self) -> None:
        now = self.clock.now()
        for key, model in self.model.items():
            live = self.backend.holder_of(key)
            expected = model.live(now)
            assert live == expected


MemoryLocks.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
test_memory_backend_random_operations_match_model = MemoryLocks.TestCase
