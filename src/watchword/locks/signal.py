"""In-process fan-out of release announcements to waiting tasks.

Every backend funnels what it hears (a local release, a Redis pub/sub message, a
PostgreSQL ``NOTIFY``) into one :class:`SignalHub`, which sets the events of the tasks
watching that key. Events are level-triggered, so an announcement that arrives before
the waiter starts waiting is not lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

__all__ = ["EventSignal", "SignalHub"]


class EventSignal:
    """A :class:`~watchword.locks.backend.ReleaseSignal` backed by an :class:`asyncio.Event`."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, limit: timedelta) -> bool:
        seconds = max(limit.total_seconds(), 0.0)
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True


class SignalHub:
    """Keeps, per key, the signals of the tasks currently waiting for it."""

    __slots__ = ("_watchers",)

    def __init__(self) -> None:
        self._watchers: dict[str, set[EventSignal]] = {}

    @asynccontextmanager
    async def watch(self, key: str) -> AsyncIterator[EventSignal]:
        signal = EventSignal()
        self._watchers.setdefault(key, set()).add(signal)
        try:
            yield signal
        finally:
            group = self._watchers.get(key)
            if group is not None:
                group.discard(signal)
                if not group:
                    del self._watchers[key]

    def notify(self, key: str) -> None:
        """Wake every task watching ``key``; they race for it with one CAS each."""
        for signal in self._watchers.get(key, ()):
            signal.set()

    def notify_all(self) -> None:
        """Wake everybody, e.g. after a notification channel reconnected and may have
        missed announcements."""
        for group in self._watchers.values():
            for signal in group:
                signal.set()

    def watched_keys(self) -> list[str]:
        return list(self._watchers)
