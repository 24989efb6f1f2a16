"""SQLite backend specifics: the doorbell between processes' waiters, stale sockets."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest

from watchword.locks import Lease, Locks, SQLiteBackend
from watchword.locks.doorbell import Doorbell
from watchword.locks.signal import SignalHub
from watchword.storage.db import create_engine_for_url
from watchword.storage.migrate import upgrade

LONG = timedelta(seconds=60)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'locks.sqlite3'}"
    upgrade(url, "0002_locks")
    return url


async def test_sqlite_waiter_in_other_backend_is_rung_not_polled(db_url: str) -> None:
    # Two backends on one file stand for two processes; the waiter's poll interval and
    # fallback are a minute, so only the doorbell can wake it in time.
    first = SQLiteBackend(create_engine_for_url(db_url), owns_engine=True)
    second = SQLiteBackend(create_engine_for_url(db_url), poll_interval=LONG, owns_engine=True)
    try:
        holder, waiter = Locks(first), Locks(second, fallback_poll=LONG)
        lease = await holder.acquire("k", ttl=LONG, wait=timedelta(0))
        task: asyncio.Task[Lease] = asyncio.create_task(waiter.acquire("k", ttl=LONG, wait=LONG))
        await asyncio.sleep(0.2)
        assert not task.done()
        assert await holder.release(lease)
        async with asyncio.timeout(10):
            second_lease = await task
        assert second_lease.fence == lease.fence + 1
        assert await waiter.release(second_lease)
    finally:
        await first.aclose()
        await second.aclose()


async def test_doorbell_ring_removes_socket_of_dead_process(tmp_path: Path) -> None:
    hub = SignalHub()
    bell = Doorbell(str(tmp_path / "db.sqlite3"), hub)
    await bell.listen()
    try:
        stale = bell.directory / "1-dead.sock"
        gone = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        gone.bind(str(stale))
        gone.close()  # the file stays, nobody reads it: a process that died
        assert stale.exists()
        bell.ring("k")
        assert not stale.exists()
    finally:
        bell.close()


async def test_doorbell_delivers_key_to_other_listener(tmp_path: Path) -> None:
    db = str(tmp_path / "db.sqlite3")
    hub_a, hub_b = SignalHub(), SignalHub()
    a, b = Doorbell(db, hub_a), Doorbell(db, hub_b)
    await a.listen()
    await b.listen()
    try:
        async with hub_b.watch("k") as signal, hub_a.watch("k") as own:
            a.ring("k")
            assert await signal.wait(timedelta(seconds=5))
            # A doorbell does not ring its own process (that one is told in-process).
            assert not await own.wait(timedelta(milliseconds=50))
    finally:
        a.close()
        b.close()


async def test_doorbell_when_its_directory_is_a_planted_symlink_touches_nothing_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A short base: Unix socket paths are limited to about 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="ww-", dir="/tmp"))
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(base))
        victim = base / "v"
        victim.mkdir(mode=0o700)
        precious = victim / "precious.txt"
        precious.write_text("keep me")
        bell = Doorbell(str(base / "db.sqlite3"), SignalHub())
        bell.directory.symlink_to(victim, target_is_directory=True)
        await bell.listen()
        try:
            bell.ring("k")
            assert precious.read_text() == "keep me"
            assert sorted(p.name for p in victim.iterdir()) == ["precious.txt"]  # no socket
        finally:
            bell.close()
    finally:
        shutil.rmtree(base)


async def test_doorbell_ring_leaves_files_that_are_not_sockets(tmp_path: Path) -> None:
    bell = Doorbell(str(tmp_path / "db.sqlite3"), SignalHub())
    await bell.listen()
    stray = bell.directory / f"stray-{tmp_path.name}.txt"
    try:
        stray.write_text("not a socket")
        bell.ring("k")
        assert stray.exists()
    finally:
        stray.unlink(missing_ok=True)
        bell.close()
