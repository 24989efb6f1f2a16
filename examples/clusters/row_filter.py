"""The list question, *which clusters may this caller ``action``?*, answered in SQL.

The guard answers item questions (``guard.require``); a list needs the condition itself, so
that the database filters, orders and pages, and rows the caller may not see are never
fetched. Both modes give the same condition over the same columns, the ones the mapping of
:func:`~.models.cluster_objects` names:

- **embedded** (:class:`EngineRowFilter`): ``watchword.integrations.sqlalchemy.authorized``
  with the process's engine (its ``objects`` hold the mapping) and the caller's compiled
  subject, whose token scope is folded in. No I/O.
- **remote** (:class:`ServerRowFilter`): one ``POST /v1/authz/filter`` through the typed
  client gives the residual predicate (the policy partially evaluated for the caller: sets
  of organizations and projects, the owner and ACL tests), which is compiled here to SQL
  with the same column mapping, so both modes run the very same statement (the server's
  ``sql`` option, with ``"issuer"``, would render an equivalent one as text, for apps that
  do not use SQLAlchemy). ``subject_ref`` carries no token scope,
  so the scope's names are applied here, as the remote guard does for checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, false

from watchword.authz import (
    CompiledSubject,
    Engine,
    ObjectMappings,
    TokenScope,
    residual_from_dict,
    residual_to_sql,
)
from watchword.client import AsyncClient, SubjectRef
from watchword.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidInput,
    PermissionDenied,
    TooManyFailedAttempts,
    Unavailable,
)
from watchword.integrations import Caller
from watchword.integrations.sqlalchemy import authorized, column_mapping

from .models import CLUSTERS, Cluster

__all__ = ["EngineRowFilter", "RowFilter", "ServerRowFilter"]

S = TypeVar("S", bound=Select[Any])


class RowFilter(Protocol):
    """Narrows a ``select(Cluster)`` to the rows ``caller`` may ``action``."""

    async def authorized(self, stmt: S, caller: Caller, action: str) -> S: ...


class EngineRowFilter:
    """Embedded mode: the process's policy engine compiles the condition."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def authorized(self, stmt: S, caller: Caller, action: str) -> S:
        subject = caller.authz_subject
        if not isinstance(subject, CompiledSubject):
            raise ConfigurationError("this caller was authenticated in remote mode")
        # A compiled subject outlives a policy change (a cache hit of the guard): compile
        # it against the current policy, as the guard's own checks do.
        return authorized(stmt, self._engine, self._engine.refresh(subject), action)


class ServerRowFilter:
    """Remote mode: the watchword server partially evaluates, the app compiles to SQL."""

    __slots__ = ("_client", "_columns")

    def __init__(self, client: AsyncClient, objects: ObjectMappings) -> None:
        self._client = client
        self._columns = column_mapping(Cluster, objects.for_class(Cluster))

    async def authorized(self, stmt: S, caller: Caller, action: str) -> S:
        ref = caller.authz_subject
        if not isinstance(ref, SubjectRef):
            raise ConfigurationError("this caller was authenticated in embedded mode")
        if caller.scopes is not None and not TokenScope(caller.scopes).allows_name(
            CLUSTERS, action
        ):
            return stmt.where(false())  # the token may not do this to any cluster
        with _server_errors():
            result = await self._client.filter(ref, action, CLUSTERS)
        return stmt.where(residual_to_sql(residual_from_dict(result.residual), self._columns))


@contextmanager
def _server_errors() -> Iterator[None]:
    """The server refusing the app (its credential, its request) is the app's problem
    (500), never the caller's 401/403; the server limiting the app is a 503."""
    try:
        yield
    except (AuthenticationError, PermissionDenied, InvalidInput) as exc:
        raise ConfigurationError(
            f"the watchword server refused this app's filter request ({exc.code}); its "
            "credential needs watchword:authz check (the authz-client role)"
        ) from exc
    except TooManyFailedAttempts as exc:
        raise Unavailable("the watchword server is limiting this app; try again later") from exc
