"""The app's configuration, from ``CLUSTERS_*`` environment variables.

- ``CLUSTERS_WATCHWORD_URL``: set, **remote** mode (the watchword server there decides);
  unset, **embedded** mode (watchword's services in this process, on watchword's database,
  configured by watchword's own ``WATCHWORD_*`` variables).
- ``CLUSTERS_WATCHWORD_TOKEN``: remote, the app's own API token; its subject holds the
  catalogue's ``authz-client`` role.
- ``CLUSTERS_ISSUER``: the issuer the app's users come from (``owner_id`` and the keys of
  ``shares`` are its user ids). Remote: required. Embedded: watchword's ``issuer_url``.
- ``CLUSTERS_DATABASE_URL``: remote, the app's own database (default
  ``sqlite+aiosqlite:///clusters.sqlite3``); embedded mode keeps the app's table in
  watchword's database.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from watchword.errors import ConfigurationError
from watchword.secret import Secret

__all__ = ["Config"]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///clusters.sqlite3"


@dataclass(frozen=True, slots=True)
class Config:
    """How the app runs; :meth:`from_env` reads it. ``watchword_url`` picks the mode."""

    watchword_url: str | None = None
    watchword_token: Secret | None = None
    issuer: str | None = None
    database_url: str = DEFAULT_DATABASE_URL

    @property
    def remote(self) -> bool:
        return self.watchword_url is not None

    def __post_init__(self) -> None:
        if self.remote and self.issuer is None:
            raise ConfigurationError("remote mode needs CLUSTERS_ISSUER")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        token = env.get("CLUSTERS_WATCHWORD_TOKEN") or None
        return cls(
            watchword_url=env.get("CLUSTERS_WATCHWORD_URL") or None,
            watchword_token=None if token is None else Secret(token),
            issuer=env.get("CLUSTERS_ISSUER") or None,
            database_url=env.get("CLUSTERS_DATABASE_URL") or DEFAULT_DATABASE_URL,
        )
