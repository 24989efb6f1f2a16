"""Several OS processes, each with many asyncio tasks, race for the same keys.

Checked from what the holders record: fences unique and increasing per key with
non-overlapping hold intervals (on the host's shared monotonic clock); one upstream
call per refresh generation; a SIGKILLed holder replaced after its TTL; a SIGSTOPped
holder whose lease was taken over has its next write refused by the fence.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import BigInteger, Column, MetaData, String, Table, text

from watchword.locks import LockBackend, Locks, PostgresBackend, open_backend
from watchword.storage.db import create_engine_for_url
from watchword.storage.optimistic import update_fenced

WORKER = Path(__file__).with_name("race_worker.py")
PROCESSES = 4

pytestmark = pytest.mark.slow


@pytest.fixture(
    params=[
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("postgres-fast", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("sqlite"),
    ]
)
def lock_target(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where the lock backend lives, as worker arguments."""
    if request.param.startswith("postgres"):
        url = request.getfixturevalue("locks_pg_url")
        return {"lock_url": url, "fast_grants": request.param == "postgres-fast"}
    if request.param == "redis":
        return {
            "lock_url": request.getfixturevalue("redis_url"),
            "redis_prefix": request.getfixturevalue("redis_prefix"),
        }
    return {"lock_url": request.getfixturevalue("sqlite_locks_url")}


@pytest.fixture
def records_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'records.sqlite3'}"


def _run(args: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_all(args: dict[str, Any], count: int, timeout: float = 600) -> None:
    # A guard against a hung worker, not a measurement: on a loaded machine a worker's
    # imports alone can take many seconds, so anything tight here fails by luck.
    procs = [_run({**args, "out": f"{args.get('out', '')}.{n}"}) for n in range(count)]
    for proc in procs:
        _, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err[-3000:]


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    async def run() -> list[tuple[Any, ...]]:
        engine = create_engine_for_url(url)
        try:
            async with engine.connect() as conn:
                return [tuple(row) for row in await conn.execute(text(sql))]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_processes_racing_for_keys_never_hold_at_once(
    lock_target: dict[str, Any], tmp_path: Path
) -> None:
    keys = ["mutex-a", "mutex-b", "mutex-c"]
    out = str(tmp_path / "holds")
    args = {
        **lock_target,
        "mode": "mutex",
        "keys": keys,
        "tasks": 12,
        "iterations": 10,
        "start_at": time.monotonic() + 3,
        "out": out,
    }
    _run_all(args, PROCESSES)
    holds: dict[str, list[tuple[int, float, float, int]]] = defaultdict(list)
    for n in range(PROCESSES):
        for key, fence, enter, leave, pid in json.loads(Path(f"{out}.{n}").read_text()):
            holds[key].append((fence, enter, leave, pid))
    assert sum(len(v) for v in holds.values()) == PROCESSES * 12 * 10
    for key in keys:
        ordered = sorted(holds[key])
        fences = [fence for fence, *_ in ordered]
        assert len(set(fences)) == len(fences), f"fence handed out twice on {key}"
        # Certain, not lucky: each task cycles through every key, so every process holds
        # each key; this checks that no process's holds went missing.
        assert len({pid for *_, pid in ordered}) == PROCESSES
        for (f1, _, leave1, _), (f2, enter2, _, _) in itertools.pairwise(ordered):
            assert leave1 <= enter2, f"{key}: holder {f2} entered before {f1} left"


def test_processes_refreshing_call_upstream_once_per_generation(
    lock_target: dict[str, Any], records_url: str
) -> None:
    keys = ["session-1", "session-2"]
    rounds = 8
    base = {**lock_target, "records_url": records_url, "keys": keys}
    _run_all({**base, "mode": "setup"}, 1)
    _run_all(
        {
            **base,
            "mode": "refresh",
            "tasks": 10,
            "rounds": rounds,
            "processes": PROCESSES,
            "start_at": time.monotonic() + 3,
        },
        PROCESSES,
    )
    calls = _query(records_url, "SELECT key, generation, token, pid FROM race_upstream_calls")
    per_generation: dict[tuple[str, int], int] = defaultdict(int)
    for key, generation, token, _ in calls:
        assert token == f"rt-{key}-{generation}"
        per_generation[(key, generation)] += 1
    assert per_generation == {(k, g): 1 for k in keys for g in range(rounds)}
    # Every generation was raced for by every process: each read it as needing a refresh
    # and went for the lock (the worker's upstream call waits for that), whichever won.
    # Which process won, and whether one won them all, is up to the scheduler: not asserted.
    racers: dict[tuple[str, int], set[int]] = defaultdict(set)
    for key, generation, pid in _query(records_url, "SELECT key, generation, pid FROM race_seen"):
        racers[(key, generation)].add(pid)
    assert all(len(racers[(k, g)]) == PROCESSES for k in keys for g in range(rounds))
    final = _query(records_url, "SELECT key, generation, token FROM race_records ORDER BY key")
    assert final == [(k, rounds, f"rt-{k}-{rounds}") for k in sorted(keys)]


@pytest.fixture
def holder_factory(lock_target: dict[str, Any], records_url: str) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []
    base = {**lock_target, "records_url": records_url, "keys": ["held"]}
    _run_all({**base, "mode": "setup"}, 1)

    def start(ttl_ms: int) -> tuple[subprocess.Popen[str], dict[str, Any]]:
        proc = _run({**base, "mode": "holder", "ttl_ms": ttl_ms})
        procs.append(proc)
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline() or "{}")
        assert "acquired" in first, proc.stderr.read() if proc.stderr else ""
        return proc, first

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


# The columns of the worker's record table that the successor writes.
race_records = Table(
    "race_records",
    MetaData(),
    Column("key", String(50), primary_key=True),
    Column("token", String(50), nullable=False),
    Column("fence", BigInteger, nullable=False),
)


async def _take_over(target: dict[str, Any], records_url: str) -> tuple[int, datetime, bool]:
    """Acquire "held" as a successor would, write under the new fence, release."""
    backend: LockBackend
    if target.get("fast_grants"):
        backend = PostgresBackend(
            create_engine_for_url(target["lock_url"]), owns_engine=True, durable_grants=False
        )
    else:
        backend = open_backend(target["lock_url"], redis_prefix=target.get("redis_prefix", ""))
    engine = create_engine_for_url(records_url)
    locks = Locks(backend)
    ttl = timedelta(seconds=30)
    try:
        lease = await locks.acquire("held", ttl=ttl, wait=timedelta(seconds=120))
        async with engine.begin() as conn:
            wrote = await update_fenced(
                conn,
                race_records,
                race_records.c.key == "held",
                fence=lease.fence,
                values={"token": "successor"},
            )
        assert await locks.release(lease)
        return lease.fence, lease.expires_at - ttl, wrote
    finally:
        await backend.aclose()
        await engine.dispose()


def test_sigkilled_holder_is_replaced_after_its_ttl(
    holder_factory: Any, lock_target: dict[str, Any], records_url: str
) -> None:
    proc, first = holder_factory(1500)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    fence, granted_at, wrote = asyncio.run(_take_over(lock_target, records_url))
    assert fence > first["acquired"]
    # Granted no earlier than the dead holder's lease ran out (both on the lock's clock).
    assert granted_at >= datetime.fromisoformat(first["expires_at"])
    assert wrote
    rows = _query(records_url, "SELECT token, fence FROM race_records WHERE key = 'held'")
    assert rows == [("successor", fence)]


def test_paused_holder_past_ttl_cannot_write_after_takeover(
    holder_factory: Any, lock_target: dict[str, Any], records_url: str
) -> None:
    proc, first = holder_factory(1000)
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline()) == {"write": 0, "ok": True}
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        fence, _, wrote = asyncio.run(_take_over(lock_target, records_url))
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert wrote and fence > first["acquired"]
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    writes = [json.loads(line) for line in out.splitlines()]
    # The stale holder woke up, tried its next write, and the fence refused it.
    assert writes[-1]["ok"] is False
    rows = _query(records_url, "SELECT token, fence FROM race_records WHERE key = 'held'")
    assert rows == [("successor", fence)]
