"""The one exception tree of watchword.

Every error a caller can see carries a stable ``code`` (snake case, never renamed once
released) and a human ``detail``. The HTTP layer maps classes to statuses in one place
(``watchword.api.problem``); the CLI maps them to exit codes.

The whole tree: class, code, and in brackets the packages whose public API re-exports the
class (``[rbac]`` is ``watchword.rbac``; ``[rbac: Alias]`` under another name)::

    WatchwordError                    internal
    ├── ConfigurationError            config_invalid
    ├── InvalidInput                  invalid_request           (carries a JSON pointer)
    │   ├── UnknownResourceType       unknown_resource_type
    │   ├── UnknownAction             unknown_action
    │   ├── UnknownRole               unknown_role              [authz, rbac: UnknownRoleReference]
    │   ├── UnsupportedPredicate      unsupported_predicate
    │   ├── UnknownOrganization       unknown_organization      [rbac]
    │   ├── UnknownProject            unknown_project           [rbac]
    │   ├── MalformedClaim            malformed_claim           [rbac]
    │   ├── WrongOrganizationCount    wrong_organization_count  [rbac]
    │   ├── ServiceAccountForeignOrg  service_account_foreign_organization [rbac]
    │   ├── SubjectRequired           subject_required          [rbac]
    │   ├── LegacyExportInvalid       legacy_export_invalid     [rbac]
    │   ├── ProviderUnknown           provider_unknown          [federation]
    │   ├── SigninStateInvalid        signin_state_invalid      [federation]
    │   ├── ReturnToRefused           return_to_refused         [federation]
    │   ├── LogoutTokenInvalid        logout_token_invalid      [federation]
    │   └── NonCanonicalPath          non_canonical_path        [edge]
    ├── NotFound                      not_found
    ├── Conflict                      conflict
    │   ├── AlreadyExists             already_exists
    │   │   └── DuplicateMember       duplicate_member          [rbac]
    │   ├── VersionConflict           version_conflict          (stale ETag / record version)
    │   │   └── StaleSubject          stale_compiled_subject    [authz]
    │   ├── InUse                     in_use                    [rbac]
    │   └── LockLost                  lock_lost                 [locks]
    ├── AuthenticationError           unauthenticated
    │   ├── TokenMalformed            token_malformed
    │   ├── TokenUnknown              token_unknown
    │   ├── TokenExpired              token_expired
    │   ├── TokenRevoked              token_revoked
    │   ├── SigninDenied              signin_denied             [federation]
    │   ├── SigninCodeRejected        signin_code_rejected      [federation]
    │   ├── IdTokenInvalid            id_token_invalid          [federation]
    │   └── SessionInvalid            session_invalid           [sessions]
    ├── PermissionDenied              forbidden
    │   ├── NotAMember                not_a_member
    │   ├── CsrfOriginMismatch        csrf_origin_mismatch
    │   ├── UpstreamTokenNotExposed   upstream_token_not_exposed
    │   ├── UntrustedProxy            untrusted_proxy           [edge]
    │   └── NoOriginalRequest         no_original_request       [edge]
    ├── Unavailable                   unavailable
    │   ├── DatabaseUnavailable       database_unavailable
    │   ├── SchemaOutdated            schema_outdated
    │   ├── RedisUnavailable          redis_unavailable
    │   └── ProviderUnavailable       provider_unavailable      [federation]
    ├── LockTimeout                   lock_timeout
    └── TooManyFailedAttempts         too_many_failed_authentications (429, Retry-After)
        └── TooManySignins            too_many_signins

Placement rule: every error class is defined in this module and nowhere else. The codes are
one public namespace (the ``code`` of every problem+json body and CLI error), so they live in
one place where a duplicate or an undrawn class shows in review, and where a class stays put
when a second part starts raising it. A capability re-exports the errors it owns from its
public API (the brackets above); ``watchword.rbac.errors`` and ``watchword.locks.errors``
re-export too, for their import path, and define nothing. ``tests/test_errors.py`` imports
every module of the package and checks the rule, the unique codes, this drawing and that
``api/problem.py`` gives every class a status.

Third-party exceptions are translated at the edge with ``raise ... from exc``; their
messages are never copied verbatim when they could carry a secret.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "AuthenticationError",
    "ConfigurationError",
    "Conflict",
    "CsrfOriginMismatch",
    "DatabaseUnavailable",
    "DuplicateMember",
    "IdTokenInvalid",
    "InUse",
    "InvalidInput",
    "LegacyExportInvalid",
    "LockLost",
    "LockTimeout",
    "LogoutTokenInvalid",
    "MalformedClaim",
    "NoOriginalRequest",
    "NonCanonicalPath",
    "NotAMember",
    "NotFound",
    "PermissionDenied",
    "ProviderUnavailable",
    "ProviderUnknown",
    "RedisUnavailable",
    "ReturnToRefused",
    "SchemaOutdated",
    "ServiceAccountForeignOrg",
    "SessionInvalid",
    "SigninCodeRejected",
    "SigninDenied",
    "SigninStateInvalid",
    "StaleSubject",
    "SubjectRequired",
    "TokenExpired",
    "TokenMalformed",
    "TokenRevoked",
    "TokenUnknown",
    "TooManyFailedAttempts",
    "TooManySignins",
    "Unavailable",
    "UnknownAction",
    "UnknownOrganization",
    "UnknownProject",
    "UnknownResourceType",
    "UnknownRole",
    "UnsupportedPredicate",
    "UntrustedProxy",
    "UpstreamTokenNotExposed",
    "VersionConflict",
    "WatchwordError",
    "WrongOrganizationCount",
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


class UnknownRole(InvalidInput):
    """A role reference names no role: a subject or policy change naming a role the policy
    does not hold (raised whenever the role set naming it is read: it may carry denies), or
    an RBAC group, binding or account naming a role that does not exist or belongs to
    another organization."""

    code = "unknown_role"
    title = "Unknown role"


class UnsupportedPredicate(InvalidInput):
    """A residual predicate, operator or column the compiler does not understand."""

    code = "unsupported_predicate"
    title = "Unsupported predicate"


class UnknownOrganization(InvalidInput):
    code = "unknown_organization"
    title = "Unknown organization"


class UnknownProject(InvalidInput):
    code = "unknown_project"
    title = "Unknown project"


class MalformedClaim(InvalidInput):
    """The namespaced authz claim (or another claim watchword reads) has the wrong shape."""

    code = "malformed_claim"
    title = "Malformed claim"


class WrongOrganizationCount(InvalidInput):
    """A service account must belong to exactly one organization."""

    code = "wrong_organization_count"
    title = "A service account belongs to exactly one organization"


class ServiceAccountForeignOrg(InvalidInput):
    """A service account was put in (or moved to) an organization that is not its own."""

    code = "service_account_foreign_organization"
    title = "A service account cannot join another organization"


class SubjectRequired(InvalidInput):
    """The caller's credential names no (issuer, subject): there is no ACL to compute."""

    code = "subject_required"
    title = "The credential carries no subject"


class LegacyExportInvalid(InvalidInput):
    code = "legacy_export_invalid"
    title = "Invalid legacy export"


class ProviderUnknown(InvalidInput):
    code = "provider_unknown"
    title = "No such sign-in provider"


class SigninStateInvalid(InvalidInput):
    """The callback's ``state`` is missing, forged, used, expired or from another browser."""

    code = "signin_state_invalid"
    title = "This sign-in is not valid (start again)"


class ReturnToRefused(InvalidInput):
    """``return_to`` leads outside watchword and the configured origins (an open redirect)."""

    code = "return_to_refused"
    title = "return_to is not an allowed address"


class LogoutTokenInvalid(InvalidInput):
    code = "logout_token_invalid"
    title = "Invalid logout token"


class NonCanonicalPath(InvalidInput):
    """A path an app could read otherwise than the edge did (``..``, ``//``, ``%2F``)."""

    code = "non_canonical_path"
    title = "Non-canonical path"


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


class DuplicateMember(AlreadyExists):
    code = "duplicate_member"
    title = "The subject is already a member of the group"


class StaleSubject(VersionConflict):
    """The compiled subject predates the current policy; recompile (``Engine.refresh``)."""

    code = "stale_compiled_subject"
    title = "Compiled subject is older than the current policy"


class InUse(Conflict):
    """A role or resource type is still referenced and cannot be deleted or narrowed."""

    code = "in_use"
    title = "Still in use"


class LockLost(Conflict):
    """The lease is no longer held: it expired, and maybe another holder took it over."""

    code = "lock_lost"
    title = "The lock was lost"

    def __init__(self, key: str, fence: int) -> None:
        self.key = key
        self.fence = fence
        super().__init__(f"lease {fence} on lock {key!r} is no longer held")


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


class SigninDenied(AuthenticationError):
    """The provider answered the authorization request with an error (``access_denied``,
    ``login_required``, …); ``provider_error`` is its code."""

    code = "signin_denied"
    title = "Sign-in was not completed at the provider"

    def __init__(self, detail: str | None = None, *, provider_error: str | None = None) -> None:
        self.provider_error = provider_error
        super().__init__(detail)


class SigninCodeRejected(AuthenticationError):
    code = "signin_code_rejected"
    title = "The provider refused the authorization code"


class IdTokenInvalid(AuthenticationError):
    code = "id_token_invalid"
    title = "The provider's ID token is not valid"


class SessionInvalid(AuthenticationError):
    """A session cookie that is malformed, unknown, expired, idle too long or ended."""

    code = "session_invalid"
    title = "Session is not valid (sign in again)"


class PermissionDenied(WatchwordError):
    code = "forbidden"
    title = "Forbidden"


class NotAMember(PermissionDenied):
    code = "not_a_member"
    title = "Not a member of this organization"


class CsrfOriginMismatch(PermissionDenied):
    """A state-changing request authenticated by the session cookie came from another
    origin (or named none)."""

    code = "csrf_origin_mismatch"
    title = "Cross-site request refused"


class UpstreamTokenNotExposed(PermissionDenied):
    """``GET /v1/me/token`` for a provider that does not opt in (``expose_access_token``)."""

    code = "upstream_token_not_exposed"
    title = "This provider's upstream token is not handed out"


class UntrustedProxy(PermissionDenied):
    """A forward-auth call carried a proxy's headers but came from outside
    ``edge.trusted_proxies``."""

    code = "untrusted_proxy"
    title = "Untrusted proxy"


class NoOriginalRequest(PermissionDenied):
    """A forward-auth call that names no original request (or an unreadable one)."""

    code = "no_original_request"
    title = "No original request"


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


class ProviderUnavailable(Unavailable):
    """An upstream provider's discovery, keys or token endpoint cannot be reached."""

    code = "provider_unavailable"
    title = "Sign-in provider unavailable"


class LockTimeout(WatchwordError):
    code = "lock_timeout"
    title = "Timed out waiting for a lock"

    def __init__(self, key: str, waited_s: float) -> None:
        self.key = key
        self.waited_s = waited_s
        super().__init__(f"timed out after {waited_s:.3f}s waiting for lock {key!r}")


class TooManyFailedAttempts(WatchwordError):
    """Too many failed authentications from one client address: wait ``retry_after_s``."""

    code = "too_many_failed_authentications"
    title = "Too many failed authentications"

    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = max(1, retry_after_s)
        super().__init__(
            f"too many failed authentications from this address; retry in {self.retry_after_s}s"
        )


class TooManySignins(TooManyFailedAttempts):
    """Too many sign-ins started from one client address (each holds a flow for a while)."""

    code = "too_many_signins"
    title = "Too many sign-ins started"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(retry_after_s)
        self.detail = f"too many sign-ins started from this address; retry in {self.retry_after_s}s"
        self.args = (self.detail,)
