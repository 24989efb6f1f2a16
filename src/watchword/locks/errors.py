"""Errors the lock package adds to the tree in :mod:`watchword.errors`.

::

    Conflict                 conflict
    └── LockLost             lock_lost      (renew of a lease that expired or was taken over)
"""

from __future__ import annotations

from watchword.errors import Conflict

__all__ = ["LockLost"]


class LockLost(Conflict):
    """The lease is no longer held: it expired, and maybe another holder took it over."""

    code = "lock_lost"
    title = "The lock was lost"

    def __init__(self, key: str, fence: int) -> None:
        self.key = key
        self.fence = fence
        super().__init__(f"lease {fence} on lock {key!r} is no longer held")
