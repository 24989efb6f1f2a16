"""Issue 15 item 31 on PostgreSQL **without Redis**: 4 long-lived OS processes (each with
its own caches) x 25 concurrent cache misses rotate once per cycle across all of them,
hand out one plaintext, and a revocation made elsewhere reaches every one of them."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from watchword.clock import FakeClock
from watchword.config import load_settings
from watchword.errors import TokenRevoked
from watchword.runtime import Runtime
from watchword.services import Services
from watchword.tokens import Owner
from watchword.tokens.tables import api_tokens

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WORKER = Path(__file__).with_name("rotation_worker.py")
PROCESSES = 4
TASKS = 25
T0 = datetime(2026, 6, 1, 9, tzinfo=UTC)
SECRET_KEY = "r" * 16 + secrets.token_hex(16)


class Replicas:
    """Long-lived worker processes; :meth:`round` makes each run 25 concurrent calls."""

    def __init__(self, url: str, subject: str) -> None:
        args = {
            "db": url,
            "redis": None,
            "prefix": "unused:",
            "secret_key": SECRET_KEY,
            "now": T0.isoformat(),
            "subject": subject,
            "tasks": TASKS,
            "serve": True,
        }
        self.procs = [
            subprocess.Popen(
                [sys.executable, str(WORKER), json.dumps(args)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        for proc in self.procs:
            assert json.loads(self._line(proc)) == {"ready": True}
        self.rotated = 0.0

    @staticmethod
    def _line(proc: subprocess.Popen[str]) -> str:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            assert proc.stderr is not None
            raise AssertionError(proc.stderr.read())
        return line

    def round(self, now: datetime) -> tuple[set[str], float]:
        """The set of plaintext digests handed out, and the rotations this round made."""
        command = json.dumps({"now": now.isoformat(), "start_at": time.time() + 1.0})
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(command + "\n")
            proc.stdin.flush()
        results = [json.loads(self._line(proc)) for proc in self.procs]
        hashes = {h for r in results for h in r["hashes"]}
        rotated = sum(r["counts"]["rotated"] for r in results)
        made, self.rotated = rotated - self.rotated, rotated
        return hashes, made

    def close(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in self.procs:
            proc.wait(timeout=60)
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def subject() -> str:
    return f"replica-{secrets.token_hex(4)}"


@pytest.fixture
def replicas(tokens_pg_url: str, subject: str) -> Iterator[Replicas]:
    made = Replicas(tokens_pg_url, subject)
    try:
        yield made
    finally:
        made.close()


async def test_rotation_without_redis_4_processes_rotate_once_per_cycle_and_see_revocation(
    tokens_pg_url: str, subject: str, replicas: Replicas
) -> None:
    settings = load_settings(environ={}, database_url=tokens_pg_url, secret_key=SECRET_KEY)
    clock = FakeClock(T0)
    runtime = Runtime.create(settings, clock=clock)
    services = Services.build(runtime)
    ttl = settings.tokens.rotation_cache_ttl

    async def stored() -> set[str]:
        async with runtime.engine.connect() as conn:
            rows = await conn.execute(
                select(api_tokens.c.token_hash).where(api_tokens.c.owner_subject == subject)
            )
            return {r[0] for r in rows}

    try:
        # Cold start: 100 misses in 4 processes, one rotation, one plaintext, no waste.
        first, rotations = replicas.round(T0)
        assert rotations == 1 and len(first) == 1
        assert await stored() == first

        # Still within the cache period: every process hands out the same token again.
        again, rotations = replicas.round(T0 + ttl / 2)
        assert rotations == 0 and again == first

        # Revoked by another process: no replica hands it out any more.
        revoked_hash = next(iter(first))
        async with runtime.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(api_tokens.c.id).where(api_tokens.c.token_hash == revoked_hash)
                )
            ).one()
        await services.tokens.revoke(row.id)
        after_revoke, rotations = replicas.round(T0 + ttl / 2 + timedelta(seconds=1))
        assert rotations == 1 and len(after_revoke) == 1 and after_revoke != first

        # The next cycle: one rotation across the 4 processes again.
        next_cycle, rotations = replicas.round(T0 + ttl / 2 + ttl + timedelta(seconds=2))
        assert rotations == 1 and len(next_cycle) == 1
        assert next_cycle.isdisjoint(first | after_revoke)
        assert await stored() == first | after_revoke | next_cycle
    finally:
        await services.aclose()
        await runtime.close()


async def test_rotation_revoked_token_is_not_handed_out_by_the_revoking_replica(
    tokens_pg_url: str,
) -> None:
    settings = load_settings(environ={}, database_url=tokens_pg_url, secret_key=SECRET_KEY)
    runtime = Runtime.create(settings, clock=FakeClock(T0))
    services = Services.build(runtime)
    owner = Owner(settings.issuer_url, f"single-{secrets.token_hex(4)}")
    from watchword.tokens.integration import rotate_integration

    try:
        first = await rotate_integration(services.integrations, owner)
        record = await services.tokens.verify(first)
        await services.tokens.revoke(record.id)
        second = await rotate_integration(services.integrations, owner)
        assert second.reveal() != first.reveal()
        with pytest.raises(TokenRevoked):
            await services.tokens.verify(first)
    finally:
        await services.aclose()
        await runtime.close()
