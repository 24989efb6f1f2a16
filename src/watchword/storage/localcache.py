"""A bounded, process-local LRU map whose entries expire: the first layer of every cache of
credentials (API tokens, sessions)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from watchword.clock import Clock

__all__ = ["LocalTTLCache"]

V = TypeVar("V")


class LocalTTLCache(Generic[V]):
    """A bounded LRU map whose entries expire ``ttl_s`` after they were put."""

    __slots__ = ("_clock", "_data", "_max", "_ttl")

    def __init__(self, clock: Clock, *, ttl_s: float, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self._ttl = ttl_s
        self._max = max_entries
        self._data: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: V, *, ttl_s: float | None = None) -> None:
        """Keep ``value`` for the cache's TTL, or for ``ttl_s`` if that is shorter."""
        ttl = self._ttl if ttl_s is None else min(ttl_s, self._ttl)
        self._data[key] = (self._clock.monotonic() + ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    def pop(self, key: str) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
