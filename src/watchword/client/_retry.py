"""When to try a request again, and how long to wait first.

Rules (the client's runners apply them; :meth:`Retry.delay` computes the wait):

- A **503** answer is tried again, for every call: watchword answers 503 when a dependency
  (the database, Redis) is not there, before it changed anything.
- A **transport error** is tried again for an *idempotent* call (every read, every
  authorization question, and revoke, which is idempotent) whatever it was: the request
  may or may not have reached the server, and asking twice does no harm. A
  *non-idempotent* call (creating or rotating a token) is tried again only when the
  connection was never made (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``): the
  request cannot have reached the server. After a read timeout or a dropped connection it
  is not: a second token might be created, the first one's secret lost.
- Nothing else is tried again: 4xx answers (a 429 included: it counts failed
  authentications) and other 5xx are raised at once.
- At most ``attempts`` tries in all. Between tries the wait is exponential with full jitter
  (``uniform(0, min(max_backoff, backoff * 2**(n-1)))`` after the n-th try), added to the
  server's ``Retry-After`` when it sent one. A ``Retry-After`` longer than
  ``max_retry_after`` is not waited for: the error is raised at once (it carries
  ``retry_after``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import httpx

__all__ = ["NEVER_SENT", "NO_RETRY", "Retry", "TRANSIENT"]

# The connection was never established: the request cannot have reached the server.
NEVER_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Worth another try for an idempotent call.
TRANSIENT: Final = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def _uniform() -> float:
    return random.random()  # noqa: S311 - jitter, not a secret


@dataclass(frozen=True, slots=True)
class Retry:
    """How many tries, and the waits between them (see the module rules).

    ``attempts`` counts every try (1: never try again). ``jitter=False`` waits the full
    backoff (deterministic). ``uniform`` returns a float in [0, 1) (for tests).
    """

    attempts: int = 3
    backoff: float = 0.2
    max_backoff: float = 5.0
    max_retry_after: float = 30.0
    jitter: bool = True
    uniform: Callable[[], float] = field(default=_uniform, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts counts every try: at least 1")
        if self.backoff < 0 or self.max_backoff < 0 or self.max_retry_after < 0:
            raise ValueError("backoff, max_backoff and max_retry_after must not be negative")

    def backoff_bound(self, tries: int) -> float:
        """The upper bound of the jittered wait after the ``tries``-th try (1-based)."""
        return min(self.max_backoff, self.backoff * 2.0 ** min(max(0, tries - 1), 60))

    def delay(self, tries: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait after the ``tries``-th failed try, or ``None``: give up (no tries
        left, or the server asks for a longer wait than ``max_retry_after``)."""
        if tries >= self.attempts:
            return None
        if retry_after is not None and retry_after > self.max_retry_after:
            return None
        bound = self.backoff_bound(tries)
        wait = bound * self.uniform() if self.jitter else bound
        return (retry_after or 0.0) + wait


NO_RETRY: Final = Retry(attempts=1)
