"""Which stored state changed, told to the caches that serve decisions without a query.

A process's caches of database state that decisions depend on (the RBAC generation and with
it the policy; verified admin keys) must not read the database on every request, yet must
see a change soon after it commits. :class:`ChangeWatch` tells them, per topic:

- a write made **in this process** counts at once (:func:`changing` marks it after commit);
- a write made **in another process** reaches this one by PostgreSQL ``NOTIFY``, sent in
  the writing transaction (so it is delivered if and only if the write committed) and heard
  by the ``change_listener`` job (:func:`listen_for_changes`) on one dedicated connection;
- while nothing listens (SQLite, which has no notifications; PostgreSQL while the listener's
  connection is down or before it is up; a process that runs no jobs), a cached value is
  trusted for ``staleness`` at most (``database.change_staleness``, 0 = read every time):
  the documented bound on how late another process's write is seen.

A cache records :meth:`ChangeWatch.mark` before it reads and asks :meth:`ChangeWatch.fresh`
with that mark afterwards; any change announced in between makes the mark stale, so no
change is lost to a read that raced it. A listener that (re)connects marks every topic
changed: it may have missed notifications while it was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watchword.clock import Clock, SystemClock
from watchword.observability.logging import get_logger

__all__ = [
    "ADMIN_KEYS",
    "CHANNEL",
    "RBAC",
    "ChangeWatch",
    "Mark",
    "announce",
    "changing",
    "listen_for_changes",
    "watch_for",
]

log = get_logger("watchword.changes")

CHANNEL: Final = "watchword_changed"
"""The PostgreSQL notification channel; the payload is the topic."""
RBAC: Final = "rbac"
ADMIN_KEYS: Final = "admin_keys"
TOPICS: Final = (RBAC, ADMIN_KEYS)
_RECONNECT = timedelta(seconds=1)
HEARTBEAT: Final = timedelta(seconds=5)
_PING = "ping:"  # a payload no topic has


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a topic stood when a cache read it: its change count and the monotonic time."""

    changes: int
    at: float


class ChangeWatch:
    """One process's record of changes per topic, and whether a listener hears the others."""

    __slots__ = ("_changes", "_clock", "_listening", "staleness")

    def __init__(self, *, clock: Clock | None = None, staleness: timedelta) -> None:
        self._clock = clock or SystemClock()
        self._changes: dict[str, int] = dict.fromkeys(TOPICS, 0)
        self._listening = False
        self.staleness = staleness.total_seconds()

    @property
    def listening(self) -> bool:
        """A listener hears other processes' changes now."""
        return self._listening

    def configure(self, *, clock: Clock, staleness: timedelta) -> None:
        self._clock = clock
        self.staleness = staleness.total_seconds()

    def mark(self, topic: str) -> Mark:
        """Take before reading the state of ``topic``."""
        return Mark(self._changes[topic], self._clock.monotonic())

    def fresh(self, topic: str, mark: Mark | None, *, max_age: float | None = None) -> bool:
        """What was read at ``mark`` may be used without reading again: nothing changed since
        that this process knows of, and either a listener would have heard of a change made
        elsewhere or the read is younger than ``staleness``. ``max_age`` caps the age in
        any case (a bound for rows edited behind watchword's back)."""
        if mark is None or mark.changes != self._changes[topic]:
            return False
        age = self._clock.monotonic() - mark.at
        if max_age is not None and age >= max_age:
            return False
        return self._listening or age < self.staleness

    def changed(self, topic: str) -> None:
        if topic in self._changes:  # an unknown topic (a newer replica's) concerns no cache here
            self._changes[topic] += 1

    def changed_all(self) -> None:
        for topic in self._changes:
            self._changes[topic] += 1

    def listener_up(self) -> None:
        """The listener (re)connected: what it missed is unknown, so everything changed."""
        self.changed_all()
        self._listening = True

    def listener_down(self) -> None:
        self._listening = False
        self.changed_all()


_watches: weakref.WeakKeyDictionary[Engine, ChangeWatch] = weakref.WeakKeyDictionary()


def watch_for(engine: AsyncEngine) -> ChangeWatch:
    """The watch of the process's database ``engine`` (one per engine, made on first use;
    the staleness bound until :meth:`ChangeWatch.configure` is the default, 1 s)."""
    watch = _watches.get(engine.sync_engine)
    if watch is None:
        watch = _watches[engine.sync_engine] = ChangeWatch(staleness=timedelta(seconds=1))
    return watch


async def announce(conn: AsyncConnection, topic: str) -> None:
    """Tell the other processes, when ``conn``'s transaction commits, that ``topic`` changed
    (PostgreSQL; nothing on SQLite, where the staleness bound applies)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_notify(:channel, :topic)"), {"channel": CHANNEL, "topic": topic}
        )


@contextlib.asynccontextmanager
async def changing(engine: AsyncEngine, topic: str) -> AsyncIterator[AsyncConnection]:
    """A write transaction on ``topic``: announced to the other processes in the transaction,
    and to this process's caches once it has committed."""
    try:
        async with engine.begin() as conn:
            yield conn
            await announce(conn, topic)
    finally:
        # After the commit (or a failure, which may have committed nothing or, on a lost
        # connection, something): a needless re-read is the only cost of marking it anyway.
        watch_for(engine).changed(topic)


async def listen_for_changes(
    engine: AsyncEngine,
    *,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
    heartbeat: timedelta = HEARTBEAT,
) -> None:
    """The ``change_listener`` job: LISTEN on PostgreSQL until ``stop``, marking topics
    changed as notifications arrive; returns at once on other databases."""
    watch = watch_for(engine)
    if engine.dialect.name != "postgresql":
        if ready is not None:
            ready.set()
        return
    conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    while not stop.is_set():
        conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        try:
            conn = await psycopg.AsyncConnection.connect(
                conninfo,
                autocommit=True,
                application_name="watchword-changes",
                connect_timeout=5,
            )
            await conn.execute(f'LISTEN "{CHANNEL}"')
            watch.listener_up()
            if ready is not None:
                ready.set()
            # A connection can die without an error reaching notifies() (a half-open TCP
            # connection, an idle timeout on the way): the listener NOTIFYs itself every
            # HEARTBEAT and counts itself down when its own echo does not come back.
            ping = f"{_PING}{id(conn)}"
            sent_at = seen_at = time.monotonic()
            while not stop.is_set():
                async for notify in conn.notifies(timeout=0.5):
                    if notify.payload == ping:
                        seen_at = time.monotonic()
                    else:
                        watch.changed(notify.payload)
                now = time.monotonic()
                if seen_at < sent_at and now - sent_at > heartbeat.total_seconds():
                    raise OSError("the change listener's heartbeat did not come back")
                if now - sent_at >= heartbeat.total_seconds() and seen_at >= sent_at:
                    sent_at = now
                    await asyncio.wait_for(
                        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, ping)),
                        timeout=heartbeat.total_seconds(),
                    )
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning("change_listener_lost", error_type=type(exc).__name__)
            watch.listener_down()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=_RECONNECT.total_seconds())
        finally:
            watch.listener_down()
            if conn is not None:
                with contextlib.suppress(psycopg.Error, OSError):
                    await conn.close()
