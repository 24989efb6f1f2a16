"""The one exception tree of watchword.

Every error a caller can see carries a stable ``code`` (snake case, never renamed once
released) and a human ``detail``. The HTTP layer maps classes to statuses in one place
(``watchword.api.problem``); the CLI maps them to exit codes.

::

    WatchwordError                      internal
    ├── ConfigurationError              config_invalid
    ├── InvalidInput                    invalid_request   (carries a JSON pointer)
    │   ├── UnknownResourceType         unknown_resource_type
    │   ├── UnknownAction               unknown_action
    │   └── UnsupportedPredicate        unsupported_predicate
    ├── NotFound                        not_found
    ├── Conflict                        conflict
    │   ├── AlreadyExists               already_exists
    │   └── VersionConflict             version_conflict   (stale ETag / record version)
    ├── AuthenticationError             unauthenticated
    │   ├── TokenMalformed              token_malformed
    │   ├── TokenUnknown                token_unknown
    │   ├── TokenExpired                token_expired
    │   └── TokenRevoked                token_revoked
    ├── PermissionDenied                forbidden
    │   └── NotAMember                  not_a_member
    ├── Unavailable                     unavailable
    │   ├── DatabaseUnavailable         database_unavailable
    │   ├── SchemaOutdated              schema_outdated
    │   └── RedisUnavailable            redis_unavailable
    └── LockTimeout                     lock_timeout

Third-party exceptions are translated at the edge with ``raise ... from exc``; their
messages are never copied verbatim when they could carry a secret.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "AuthenticationError",
    "ConfigurationError",
    "Conflict",
    "DatabaseUnavailable",
    "InvalidInput",
    "LockTimeout",
    "NotAMember",
    "NotFound",
    "PermissionDenied",
    "RedisUnavailable",
    "SchemaOutdated",
    "TokenExpired",
    "TokenMalformed",
    "TokenRevoked",
    "TokenUnknown",
    "Unavailable",
    "UnknownAction",
    "UnknownResourceType",
    "UnsupportedPredicate",
    "VersionConflict",
    "WatchwordError",
]


class WatchwordError(Exception):
    """Base of every watchword error; ``code`` is stable and machine-readable."""

    code: str = "internal"
    title: str = "Internal error"

    def __init__(self, detail: str | None = None, *, pointer: str | None = None) -> None:
        self.detail = detail if detail is not None else self.title
        self.pointer = pointer
        super().__init__(self.detail)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, detail={self.detail!r})"


class ConfigurationError(WatchwordError):
    """A setting is missing or invalid; start-up stops (CLI exit code 2)."""

    code = "config_invalid"
    title = "Invalid configuration"


class InvalidInput(WatchwordError):
    """The request is malformed; ``pointer`` (RFC 6901) names the bad field when known."""

    code = "invalid_request"
    title = "Invalid request"


class UnknownResourceType(InvalidInput):
    code = "unknown_resource_type"
    title = "Unknown resource type"


class UnknownAction(InvalidInput):
    code = "unknown_action"
    title = "Unknown action"


class UnsupportedPredicate(InvalidInput):
    """A residual predicate, operator or column the compiler does not understand."""

    code = "unsupported_predicate"
    title = "Unsupported predicate"


class NotFound(WatchwordError):
    code = "not_found"
    title = "Not found"


class Conflict(WatchwordError):
    code = "conflict"
    title = "Conflict"


class AlreadyExists(Conflict):
    code = "already_exists"
    title = "Already exists"


class VersionConflict(Conflict):
    """The record changed since it was read (stale ``If-Match`` or version)."""

    code = "version_conflict"
    title = "The record was changed by someone else"


class AuthenticationError(WatchwordError):
    code = "unauthenticated"
    title = "Authentication required"


class TokenMalformed(AuthenticationError):
    code = "token_malformed"
    title = "Malformed token"


class TokenUnknown(AuthenticationError):
    code = "token_unknown"
    title = "Invalid token"


class TokenExpired(AuthenticationError):
    code = "token_expired"
    title = "Token expired"


class TokenRevoked(AuthenticationError):
    code = "token_revoked"
    title = "Token revoked"


class PermissionDenied(WatchwordError):
    code = "forbidden"
    title = "Forbidden"


class NotAMember(PermissionDenied):
    code = "not_a_member"
    title = "Not a member of this organization"


class Unavailable(WatchwordError):
    code = "unavailable"
    title = "Service unavailable"


class DatabaseUnavailable(Unavailable):
    code = "database_unavailable"
    title = "Database unavailable"


class SchemaOutdated(Unavailable):
    code = "schema_outdated"
    title = "Database schema is behind"


class RedisUnavailable(Unavailable):
    code = "redis_unavailable"
    title = "Redis unavailable"


class LockTimeout(WatchwordError):
    code = "lock_timeout"
    title = "Timed out waiting for a lock"

    def __init__(self, key: str, waited_s: float) -> None:
        self.key = key
        self.waited_s = waited_s
        super().__init__(f"timed out after {waited_s:.3f}s waiting for lock {key!r}")
