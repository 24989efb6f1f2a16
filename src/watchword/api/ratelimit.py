"""A limit on failed authentications per client address (a moving window, in process).

A well-formed but made-up token costs one database look-up, and admin keys have no negative
cache, so without a limit a client can make the database answer as fast as it can send. After
``auth.failed_limit`` failures inside the window, every authentication from that address is
answered 429 ``too_many_failed_authentications`` with ``Retry-After``, before any look-up,
until the window frees; successful authentications do not count.

Unknown tokens presented to ``/v1/oauth/introspect`` and ``/v1/oauth/revoke`` are counted by
another instance, per authenticated caller (``auth.introspect_unknown_limit``): past it only
those two endpoints refuse that caller. Counting them against the caller's address, as
before, let anyone who could make a resource server introspect made-up tokens get every
call from that server's address refused.

Limits of the limit, as they are:

- the counter is per process (each replica keeps its own), in memory, one entry per address
  seen in the window;
- it is keyed by the connection's address: uvicorn takes it from ``X-Forwarded-For`` only
  when the connection comes from its trusted proxy addresses (loopback by default,
  ``FORWARDED_ALLOW_IPS``); behind a proxy that does not set the header, every client shares
  the proxy's address and the limit applies to all of them together; an IPv6 client that
  changes addresses within its prefix gets a fresh count per address;
- the check and the count are separate steps, so each window admits the limit plus the
  requests already in flight.

"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from watchword.errors import TooManyFailedAttempts

__all__ = ["Attempt", "FailedAuthLimiter"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """An authentication admitted under the limit; :meth:`failed` counts it as a failure."""

    limiter: FailedAuthLimiter
    address: str

    async def failed(self) -> None:
        await self.limiter.failed(self.address)


class FailedAuthLimiter:
    """Counts failed authentications by client address and refuses past the limit."""

    __slots__ = ("_error", "_item", "_limiter")

    def __init__(
        self, limit: str, *, error: type[TooManyFailedAttempts] = TooManyFailedAttempts
    ) -> None:
        self._item: RateLimitItem | None = None if limit == "off" else parse(limit)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._error = error

    async def check(self, address: str) -> None:
        """Raise :class:`TooManyFailedAttempts` if ``address`` is over the limit."""
        if self._item is None:
            return
        if not await self._limiter.test(self._item, address):
            stats = await self._limiter.get_window_stats(self._item, address)
            raise self._error(math.ceil(stats.reset_time - time.time()))

    async def attempt(self, address: str) -> Attempt:
        """Admit an authentication from ``address`` (or raise :class:`TooManyFailedAttempts`)."""
        await self.check(address)
        return Attempt(self, address)

    async def failed(self, address: str) -> None:
        """Count one failed authentication from ``address``."""
        if self._item is not None:
            await self._limiter.hit(self._item, address)
