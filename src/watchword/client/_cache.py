"""A local cache of check decisions, bounded, dropped when the policy generation changes.

Rules:

- An entry is keyed by (subject, resource type, action, object): the canonical JSON of the
  inline subject document or of the ``subject_ref``, the object's type, the action, and the
  canonical JSON of the whole object (id, organization, project, owner, ACL). Keys longer
  than ``max_key_chars`` are not kept (a huge subject would crowd the cache out).
- Every ``/v1/authz/*`` answer carries ``X-Watchword-Policy-Generation``: the server's RBAC
  generation, bumped by every change to resource types, roles, groups, bindings, accounts
  or issuers. When an answer shows a generation higher than the one the cache holds, every
  entry is dropped and the new generation is adopted. A decision is kept only when its
  answer's generation is the current one: an answer without the header (an older server)
  or from a replica that has not yet seen the latest change is not kept.
- The cache learns of a change only from an answer; when every question hits, none comes.
  So entries also expire ``max_age`` seconds after they were stored (``None``: never): the
  bound on how long a change made elsewhere can go unseen. Any ``/v1/authz/*`` call made
  by the same client (a miss, ``explain``, ``filter``) brings the generation sooner.
- At most ``max_entries`` entries, least recently used dropped first.
- One cache per server (the generation is that server's); safe to share between threads.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

from watchword.client._models import Decision

__all__ = ["CacheKey", "DecisionCache", "cache_key"]

CacheKey = tuple[str, str, str, str]
_MAX_KEY_CHARS: Final = 4096


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(subject: Mapping[str, Any], action: str, obj: Mapping[str, Any]) -> CacheKey:
    """The key of a question: ``subject`` is the request's subject part
    (``{"subject": …}`` or ``{"subject_ref": …}``), ``obj`` the wire object."""
    return (_canonical(subject), str(obj.get("type", "")), action, _canonical(obj))


class DecisionCache:
    """Check decisions by question (see the module rules).

    ``DecisionCache(max_entries=10_000, max_age=5.0)``; ``clock`` is a monotonic clock in
    seconds (``time.monotonic``; tests pass their own).
    """

    def __init__(
        self,
        max_entries: int = 10_000,
        *,
        max_age: float | None = 5.0,
        max_key_chars: int = _MAX_KEY_CHARS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if max_age is not None and max_age <= 0:
            raise ValueError("max_age must be positive (or None: no age limit)")
        self.max_entries = max_entries
        self.max_age = max_age
        self.max_key_chars = max_key_chars
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[CacheKey, tuple[Decision, float]] = OrderedDict()
        self._generation: int | None = None
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return (
            f"DecisionCache(entries={len(self)}, max_entries={self.max_entries}, "
            f"max_age={self.max_age}, generation={self._generation})"
        )

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def generation(self) -> int | None:
        """The policy generation the entries belong to (``None``: none seen yet)."""
        return self._generation

    def get(self, key: CacheKey) -> Decision | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                decision, stored_at = entry
                if self.max_age is None or self._clock() - stored_at < self.max_age:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return decision
                del self._entries[key]
            self.misses += 1
            return None

    def observe(self, generation: int | None) -> None:
        """An answer showed ``generation``: a higher one than held drops every entry."""
        if generation is None:
            return
        with self._lock:
            self._observe(generation)

    def _observe(self, generation: int) -> None:
        if self._generation is None or generation > self._generation:
            self._entries.clear()
            self._generation = generation

    def put(self, key: CacheKey, decision: Decision, generation: int | None) -> None:
        """Keep ``decision``, answered at ``generation``, if that is the current one."""
        if generation is None or sum(len(part) for part in key) > self.max_key_chars:
            return
        with self._lock:
            self._observe(generation)
            if generation != self._generation:
                return  # from a replica behind the latest change
            self._entries[key] = (decision, self._clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Drop every entry and forget the generation."""
        with self._lock:
            self._entries.clear()
            self._generation = None
