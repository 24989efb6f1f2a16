"""Seed 001's proof on PostgreSQL: 100 concurrent cache misses from 4 OS processes (25
tasks each, sharing the Redis rotation cache) rotate exactly once."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from watchword.clock import FakeClock
from watchword.config import Settings, load_settings
from watchword.errors import TokenExpired
from watchword.runtime import Runtime
from watchword.secret import sha256_hex
from watchword.services import Services
from watchword.tokens import Owner
from watchword.tokens.format import TokenKind
from watchword.tokens.integration import rotate_integration
from watchword.tokens.rotation import is_current
from watchword.tokens.store import load_lifetimes
from watchword.tokens.tables import api_tokens

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

WORKER = Path(__file__).with_name("rotation_worker.py")
PROCESSES = 4
TASKS = 25
T0 = datetime(2026, 5, 1, 9, tzinfo=UTC)
SECRET_KEY = "k" * 16 + secrets.token_hex(16)


def _run_workers(
    url: str, redis_url: str, prefix: str, subject: str, now: datetime
) -> list[dict[str, object]]:
    args = {
        "db": url,
        "redis": redis_url,
        "prefix": prefix,
        "secret_key": SECRET_KEY,
        "now": now.isoformat(),
        "subject": subject,
        "tasks": TASKS,
        "start_at": time.time() + 3.0,  # after every interpreter has started
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def _settings(url: str, redis_url: str, prefix: str) -> Settings:
    return load_settings(
        environ={},
        database_url=url,
        redis_url=redis_url,
        redis_prefix=prefix,
        secret_key=SECRET_KEY,
    )


async def _tokens(runtime: Runtime, owner: Owner) -> list[str]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            select(api_tokens.c.token_hash)
            .where(api_tokens.c.owner_subject == owner.subject)
            .order_by(api_tokens.c.id)
        )
        return [r[0] for r in rows]


def _totals(results: list[dict[str, object]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for r in results:
        for key, value in r["counts"].items():  # type: ignore[attr-defined]
            totals[key] = totals.get(key, 0) + value
    return totals


async def test_rotation_cold_start_100_misses_in_4_processes_mint_one_token(
    tokens_pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    subject = f"cold-{secrets.token_hex(4)}"
    results = _run_workers(tokens_pg_url, redis_url, redis_prefix, subject, T0)
    hashes = {h for r in results for h in r["hashes"]}  # type: ignore[attr-defined]
    assert len(hashes) == 1
    assert _totals(results)["rotated"] == 1
    runtime = Runtime.create(_settings(tokens_pg_url, redis_url, redis_prefix), clock=FakeClock(T0))
    try:
        owner = Owner(runtime.settings.issuer_url, subject)
        assert await _tokens(runtime, owner) == sorted(hashes)  # no wasted token
    finally:
        await runtime.close()


async def test_rotation_100_stale_misses_in_4_processes_rotate_exactly_once(
    tokens_pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = _settings(tokens_pg_url, redis_url, redis_prefix)
    subject = f"warm-{secrets.token_hex(4)}"
    clock = FakeClock(T0)
    runtime = Runtime.create(settings, clock=clock)
    services = Services.build(runtime)
    try:
        owner = Owner(settings.issuer_url, subject)
        old = await rotate_integration(services.integrations, owner)
        # One cache period later every worker finds the cached value stale.
        t1 = T0 + settings.tokens.rotation_cache_ttl
        results = _run_workers(tokens_pg_url, redis_url, redis_prefix, subject, t1)
        handed_out = {h for r in results for h in r["hashes"]}  # type: ignore[attr-defined]
        assert len(handed_out) == 1 and sha256_hex(old.reveal()) not in handed_out
        totals = _totals(results)
        assert totals["rotated"] == 1
        assert totals["cached"] + totals["cached_after_lock"] == PROCESSES * TASKS - 1
        stored = await _tokens(runtime, owner)
        assert sorted(stored) == sorted({sha256_hex(old.reveal()), *handed_out})

        async with runtime.engine.connect() as conn:
            lifetimes = await load_lifetimes(conn, owner, "integration", TokenKind.INTEGRATION)
        grace = settings.tokens.grace_period
        assert len([t for t in lifetimes if is_current(t, t1, grace)]) == 1

        # The old token works until t1 + grace and not after.
        for when, ok in ((t1 + grace - timedelta(seconds=1), True), (t1 + grace, False)):
            checker = Runtime.create(settings, clock=FakeClock(when))
            checking = Services.build(checker)
            try:
                service = checking.tokens
                await service.cache.invalidate(sha256_hex(old.reveal()))
                if ok:
                    assert (await service.verify(old)).kind is TokenKind.INTEGRATION
                else:
                    with pytest.raises(TokenExpired):
                        await service.verify(old)
            finally:
                await checking.aclose()
                await checker.close()
    finally:
        await services.aclose()
        await runtime.close()
