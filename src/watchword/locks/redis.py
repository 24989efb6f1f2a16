"""Redis lock backend: ``SET NX PX`` leases, Lua compare-and-swap, pub/sub wake-up.

Keys, all under a configurable prefix (``watchword:locks:`` by default):

- ``<prefix>lock:<key>``: the lease, value ``"<fence>:<holder>"``, expiring by ``PX``;
- ``<prefix>fence:<key>``: a hash with ``last`` (newest fence granted) and ``released``
  (newest fence released), never expiring;
- channel ``<prefix>released``: a release publishes the key; one subscription per
  backend instance fans it out to the waiting tasks of that process.

Every operation is one Lua script, so check-and-change is atomic on the server.
Time is the **Redis server's**: leases expire by ``PX``, and ``expires_at`` is computed
from the server's ``TIME`` inside the script.

Fencing number: ``max(last + 1, server time in ms)``. The ``+1`` makes it grow on one
server; the time floor keeps it growing after a failover to a replica that never saw
the newest grants (asynchronous replication loses them), as long as the new primary's
clock is not behind by more than the time since those lost grants. ``docs/locks.md``
says what Redis cannot promise.

A grant is ``broken`` when the previous lease was never released (``last`` ≠
``released``), i.e. it expired in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from watchword.errors import RedisUnavailable
from watchword.locks.backend import ReleaseSignal
from watchword.locks.lease import Attempt, Lease
from watchword.locks.signal import SignalHub

__all__ = ["DEFAULT_PREFIX", "RedisBackend"]

DEFAULT_PREFIX = "watchword:locks:"
_T = TypeVar("_T")

# Rules: one script per operation (KEYS[1] lease, KEYS[2] fence hash).
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('HGET', KEYS[2], 'last') or '0')
local released = tonumber(redis.call('HGET', KEYS[2], 'released') or '0')
local broken = 0
if last > 0 and last ~= released then broken = 1 end
local fence = last + 1
if now_ms > fence then fence = now_ms end
local fence_s = string.format('%d', fence)
redis.call('HSET', KEYS[2], 'last', fence_s)
redis.call('SET', KEYS[1], fence_s .. ':' .. ARGV[1], 'PX', ARGV[2])
return {1, fence, broken, tonumber(t[1]), tonumber(t[2])}
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  local t = redis.call('TIME')
  return {1, tonumber(t[1]), tonumber(t[2])}
end
return {0}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'released', ARGV[2])
  redis.call('PUBLISH', ARGV[3], ARGV[4])
  return 1
end
return 0
"""

_RECONNECT_DELAY_S = 0.5


def _server_time(seconds: int, micros: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micros)


async def _close(pubsub: PubSub) -> None:
    await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated


def _ms(ttl: timedelta) -> int:
    return max(1, int(ttl.total_seconds() * 1000))


class RedisBackend:
    """Leases in one Redis server (or primary); see the module docstring for the layout."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._owns_client = owns_client
        self._channel = f"{prefix}released"
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._hub = SignalHub()
        self._listener: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX) -> RedisBackend:
        # A hung server must not hang a lock call past any wait limit.
        client = aioredis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        return cls(client, prefix=prefix, owns_client=True)

    @property
    def name(self) -> str:
        return "redis"

    def _keys(self, key: str) -> list[str]:
        return [f"{self._prefix}lock:{key}", f"{self._prefix}fence:{key}"]

    async def _call(self, op: Callable[[], Awaitable[_T]]) -> _T:
        try:
            return await op()
        except RedisError as exc:
            raise RedisUnavailable(f"Redis lock backend failed ({type(exc).__name__})") from exc

    async def try_acquire(self, key: str, holder: str, ttl: timedelta) -> Attempt:
        keys = self._keys(key)
        reply = await self._call(lambda: self._acquire(keys=keys, args=[holder, _ms(ttl)]))
        if int(reply[0]) == 0:
            pttl = int(reply[1])
            # -2: expired between EXISTS and PTTL cannot happen inside a script; -1 would
            # mean a lease without expiry, which this module never writes.
            retry = timedelta(milliseconds=pttl) if pttl > 0 else None
            return Attempt(lease=None, retry_after=retry)
        fence, broken, sec, usec = (int(x) for x in reply[1:5])
        lease = Lease(key, holder, fence, _server_time(sec, usec) + ttl)
        return Attempt(lease=lease, broken=bool(broken))

    async def renew(self, lease: Lease, ttl: timedelta) -> Lease | None:
        keys = self._keys(lease.key)
        value = f"{lease.fence}:{lease.holder}"
        reply = await self._call(lambda: self._renew(keys=keys, args=[value, _ms(ttl)]))
        if int(reply[0]) == 0:
            return None
        expires_at = _server_time(int(reply[1]), int(reply[2])) + ttl
        return Lease(lease.key, lease.holder, lease.fence, expires_at)

    async def release(self, lease: Lease) -> bool:
        keys = self._keys(lease.key)
        args: list[str | int] = [
            f"{lease.fence}:{lease.holder}",
            lease.fence,
            self._channel,
            lease.key,
        ]
        reply = await self._call(lambda: self._release(keys=keys, args=args))
        return int(reply) == 1

    def watch(self, key: str) -> AbstractAsyncContextManager[ReleaseSignal]:
        return self._watch(key)

    @asynccontextmanager
    async def _watch(self, key: str) -> AsyncIterator[ReleaseSignal]:
        await self._ensure_listener()
        async with self._hub.watch(key) as signal:
            yield signal

    async def _ensure_listener(self) -> None:
        """Start the subscriber once and wait until Redis confirmed the subscription,
        so that no release published after this returns can be missed."""
        if self._listener is not None and not self._listener.done():
            # Listener running; if it is reconnecting, waiters meanwhile fall back to
            # polling (their wait is capped by ``fallback_poll``).
            return
        async with self._start_lock:
            if self._listener is not None and not self._listener.done():
                return
            pubsub = self._client.pubsub()
            try:
                await self._subscribe(pubsub)
            except RedisError as exc:
                await _close(pubsub)
                raise RedisUnavailable(
                    f"Redis lock backend cannot subscribe ({type(exc).__name__})"
                ) from exc
            self._listener = asyncio.create_task(self._listen(pubsub), name="ww-lock-redis-sub")

    async def _subscribe(self, pubsub: PubSub) -> None:
        await pubsub.subscribe(self._channel)
        while True:
            message = await pubsub.get_message(timeout=5.0)
            if message is None:
                raise RedisError("no subscription confirmation")
            if message["type"] == "subscribe":
                return
            self._dispatch(message)

    def _dispatch(self, message: dict[str, object]) -> None:
        if message.get("type") != "message":
            return
        data = message.get("data")
        key = data.decode() if isinstance(data, bytes) else str(data)
        self._hub.notify(key)

    async def _listen(self, pubsub: PubSub) -> None:
        try:
            while True:
                try:
                    async for message in pubsub.listen():
                        self._dispatch(message)
                except RedisError:
                    pass
                # Connection lost: announcements may have been missed, so wake everybody
                # to try again, then resubscribe.
                self._hub.notify_all()
                await _close(pubsub)
                pubsub = await self._resubscribe()
                self._hub.notify_all()
        finally:
            await _close(pubsub)

    async def _resubscribe(self) -> PubSub:
        while True:
            await asyncio.sleep(_RECONNECT_DELAY_S)
            pubsub = self._client.pubsub()
            try:
                await self._subscribe(pubsub)
            except RedisError:
                await _close(pubsub)
                continue
            return pubsub

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._owns_client:
            await self._client.aclose()
