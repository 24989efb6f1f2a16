"""The lock package's error, re-exported for this import path; it is defined (and drawn, with
the placement rule) in :mod:`watchword.errors`.
"""

from __future__ import annotations

from watchword.errors import LockLost

__all__ = ["LockLost"]
