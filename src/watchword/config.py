"""Settings, read from ``WATCHWORD_*`` environment variables and an optional TOML file.

Shape. A few settings describe the process as a whole and are read by several parts, so no
part owns them: they stay at the top (``env``, ``host``, ``port``, ``issuer_url``,
``secret_key``). Every other setting belongs to one part and lives in that part's table
(``database``, ``redis``, ``log``, ``telemetry``, ``authz``, ``rbac``, ``locks``, ``tokens``), so
a part is built from its own table (``settings.tokens``) and a part with several instances
(``oidc.providers``, a list of tables) fits the same shape.

Names. One path names a setting everywhere:

==============  ===========================================================================
TOML            tables: ``[tokens]`` then ``grace_period = "1d"``; a list is an array of
                tables (``[[oidc.providers]]``). Everything may sit under one ``[watchword]``
                table (``[watchword.tokens]``).
environment     ``WATCHWORD_`` + the path joined by ``__``: ``WATCHWORD_TOKENS__GRACE_PERIOD``;
                a list item by its index: ``WATCHWORD_OIDC__PROVIDERS__0__CLIENT_SECRET``.
aliases         every name of the flat layout (``WATCHWORD_TOKEN_GRACE_PERIOD``, a top-level
                ``token_grace_period`` file key) still works: :data:`ALIASES` maps it to its
                path. An alias and its path given different values by the same source are
                refused, naming both.
==============  ===========================================================================

Precedence, highest first, setting by setting: keyword overrides of :func:`load_settings`
(the file's shape), environment variables, the config file named by ``--config`` or
``WATCHWORD_CONFIG_FILE``, defaults. Nothing is read at import time: :func:`load_settings`
builds a :class:`Settings` when asked, and turns every problem (unknown name, with a "did you
mean"; bad value; conflicting alias) into one :class:`~watchword.errors.ConfigurationError`
that names each setting as the operator wrote it.

Secrets. A field declared with ``repr=False`` is a secret: ``repr`` leaves it out and
:meth:`Settings.redacted` masks it. Every other string is shown through the one redaction rule
(:func:`~watchword.observability.redaction.redact_text`), which masks URL passwords and secret
query parameters.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from watchword.errors import ConfigurationError
from watchword.observability.logging import LogFormat
from watchword.observability.redaction import redact_text
from watchword.secret import REDACTED

__all__ = [
    "ALIASES",
    "ENV_PREFIX",
    "MIN_SECRET_KEY_LENGTH",
    "AuthSettings",
    "AuthzSettings",
    "DatabaseSettings",
    "Duration",
    "Environment",
    "LockSettings",
    "LogSettings",
    "OidcProviderSettings",
    "OidcSettings",
    "RbacSettings",
    "RedisSettings",
    "RefresherSettings",
    "SessionKey",
    "SessionSettings",
    "Settings",
    "StringList",
    "TelemetrySettings",
    "TokenSettings",
    "env_name",
    "load_settings",
    "parse_duration",
]

ENV_PREFIX = "WATCHWORD_"
MIN_SECRET_KEY_LENGTH = 32
ENV_NESTED_DELIMITER = "__"
# Environment variables with the prefix that are not settings themselves.
_NOT_SETTINGS = frozenset({"WATCHWORD_CONFIG_FILE"})
_NOT_SETTINGS_PREFIXES = ("WATCHWORD_TEST_",)

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: object) -> object:
    """Accept ``30``, ``30s``, ``500ms``, ``10m``, ``1h``, ``7d`` (or a timedelta)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError("must be a duration such as 30s, 500ms, 10m, 1h or 7d")
        return timedelta(seconds=float(match[1]) * _UNITS[match[2] or "s"])
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def parse_string_list(value: object) -> object:
    """Accept a list, a JSON array (``["a", "b"]``) or words separated by commas or spaces
    (``openid email``), so a list of names can come from one environment variable."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(
                    "must be a JSON array of strings or words separated by commas"
                ) from None
        return [word for word in re.split(r"[,\s]+", text) if word]
    return value


def parse_string_map(value: object) -> object:
    """Accept a table or a JSON object (``{"prompt": "consent"}``) from one variable."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            raise ValueError('must be a JSON object such as {"prompt": "consent"}') from None
    return value


StringList = Annotated[list[str], BeforeValidator(parse_string_list)]
StringMap = Annotated[dict[str, str], BeforeValidator(parse_string_map)]


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


def _repr_args(model: BaseModel) -> Iterator[tuple[str | None, Any]]:
    # Secrets (repr=False) are left out; URLs and other strings lose their credentials.
    for name, field in type(model).model_fields.items():
        if field.repr:
            value = getattr(model, name)
            yield name, redact_text(value) if isinstance(value, str) else value


class _Part(BaseModel):
    """One part's table of settings."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        return _repr_args(self)


def _check_url(value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    if not value.startswith(allowed):
        raise ValueError(f"must start with one of {', '.join(allowed)}")
    try:
        _port = urlsplit(value).port  # parsing the port is what raises
    except ValueError:
        raise ValueError(
            "is not a valid URL: its host and port cannot be read; the port must be a number "
            "and an IPv6 address goes in brackets (scheme://[::1]:6379/…)"
        ) from None
    return value


class DatabaseSettings(_Part):
    url: str = Field(
        default="sqlite+aiosqlite:///watchword.sqlite3",
        description="SQLAlchemy URL: sqlite+aiosqlite:///file or postgresql+psycopg://…",
    )
    connect_timeout: Duration = Field(default=timedelta(seconds=5))
    pool_size: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=5,
        description=(
            "PostgreSQL connections each process keeps open (10 more are opened when "
            "busy, and closed after use)."
        ),
    )
    change_staleness: Duration = Field(
        default=timedelta(seconds=1),
        description=(
            "How long a process trusts its cached policy generation and verified admin keys "
            "when no change listener tells it of other processes' writes: always on SQLite, "
            "on PostgreSQL only while its LISTEN connection is down (0: read every time). "
            "Writes made in the process itself count at once."
        ),
    )

    @field_validator("url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        from watchword.storage.db import normalize_url

        try:
            normalize_url(value)
        except ConfigurationError as exc:
            raise ValueError(exc.detail) from None
        return value


class RedisSettings(_Part):
    url: str | None = Field(
        default=None, description="redis://host:port/db; enables the shared cache and locks."
    )
    prefix: str = Field(default="watchword:", description="Prefix of every Redis key.")

    @field_validator("url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        return _check_url(value, ("redis://", "rediss://", "unix://"))


class LogSettings(_Part):
    level: str = Field(default="info")
    format: LogFormat = Field(default=LogFormat.JSON)

    @field_validator("level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        levels = {"debug", "info", "warning", "error", "critical"}
        if value.lower() not in levels:
            raise ValueError(f"must be one of {', '.join(sorted(levels))}")
        return value.lower()


class TelemetrySettings(_Part):
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces endpoint (e.g. http://127.0.0.1:4318/v1/traces); "
        "unset means no traces are exported.",
    )
    service_name: str = Field(default="watchword")

    @field_validator("otlp_endpoint")
    @classmethod
    def _check_otlp_endpoint(cls, value: str | None) -> str | None:
        return _check_url(value, ("http://", "https://"))


class AuthzSettings(_Part):
    observe_every: Annotated[int, Field(ge=1)] = Field(
        default=256,
        description="Time and trace one authorization check in N (1 = every call). A timed, "
        "traced check costs ~6 µs against ~0.3 µs for the check itself (benchmarks/authz).",
    )
    decision_log_sample_rate: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        default=0.0, description="Fraction of authorization decisions logged (0 = off)."
    )


class RbacSettings(_Part):
    authz_claim: str = Field(
        default="https://watchword.dev/authz",
        description="Namespaced userinfo/token claim carrying {acctype, orgIds}.",
    )
    acl_cache_ttl: Duration = Field(
        default=timedelta(seconds=60), description="Upper bound on a cached ACL's staleness."
    )


class LockSettings(_Part):
    durable_grants: bool = Field(
        default=True,
        description="PostgreSQL lock grants wait for the WAL flush, so a database crash cannot "
        "lose one. Off: hand-offs about 2x faster; a crash may then let a lost grant's holder "
        "overlap its successor, whose newer fencing number refuses the old holder's writes.",
    )


class TokenSettings(_Part):
    grace_period: Duration = Field(
        default=timedelta(days=1),
        description="How long a rotated integration token stays valid.",
    )
    rotation_cache_ttl: Duration = Field(
        default=timedelta(hours=1),
        description="How long a rotated integration token is served from cache before rotating.",
    )
    verify_cache_ttl: Duration = Field(
        default=timedelta(seconds=30),
        description="How long a verified token is trusted from cache: the revocation bound.",
    )
    retention: Duration = Field(
        default=timedelta(days=7),
        description="How long the janitor keeps expired tokens before deleting them.",
    )
    janitor_every: Duration = Field(
        default=timedelta(days=1),
        description="How often a serving process runs the token janitor (under a lease, so "
        "one replica at a time).",
    )


class AuthSettings(_Part):
    failed_limit: str = Field(
        default="60/minute",
        description="Failed authentications allowed per client address (a moving window, "
        "e.g. 60/minute, 1000/hour); past it every authentication from that address is 429 "
        "with Retry-After until the window frees. off: no limit.",
    )

    introspect_unknown_limit: str = Field(
        default="600/minute",
        description="Unknown tokens one caller may ask about through /v1/oauth/introspect and "
        "/v1/oauth/revoke (per authenticated caller, a moving window); past it those two "
        "endpoints answer that caller 429 too_many_failed_authentications, and nothing else "
        "is refused. off: no limit.",
    )

    signin_limit: str = Field(
        default="30/minute",
        description="Sign-ins started (GET /auth/login) per client address, a moving window; "
        "past it 429 too_many_signins. off: no limit.",
    )

    @field_validator("failed_limit", "signin_limit", "introspect_unknown_limit")
    @classmethod
    def _check_limit(cls, value: str) -> str:
        if value.strip().lower() == "off":
            return "off"
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError("must be off or a rate such as 60/minute or 1000/hour") from None
        return value.strip()


_LOOPBACK_NAMES = frozenset({"localhost"})
# Signature algorithms an ID token may use: asymmetric only. ``none`` and the HMAC family
# are refused whatever the configuration says (an HMAC "signed" with a provider's public
# key is the classic confusion attack).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MAX_LEEWAY = timedelta(minutes=5)


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` (a URL's host) is this machine: localhost, 127.0.0.0/8 or ::1."""
    if host is None:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ClientAuthMethod(StrEnum):
    CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 - a method name
    CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105 - a method name
    PRIVATE_KEY_JWT = "private_key_jwt"


class OidcProviderSettings(_Part):
    """One upstream OpenID Connect provider people sign in through."""

    name: str = Field(
        default="",
        description="Short name (a-z, 0-9, - and _; at most 32): /auth/login?provider=NAME.",
    )
    display_name: str = Field(default="", description="Shown on the sign-in page.")
    issuer: str = Field(
        default="",
        description="The provider's exact issuer URL; discovery at "
        "ISSUER/.well-known/openid-configuration. https, except loopback with "
        "oidc.allow_insecure_http.",
    )
    client_id: str = Field(default="", description="The client id registered at the provider.")
    client_secret: str | None = Field(
        default=None,
        repr=False,
        description="The client secret (client_secret_basic or client_secret_post).",
    )
    client_auth_method: ClientAuthMethod = Field(
        default=ClientAuthMethod.CLIENT_SECRET_BASIC,
        description="How watchword authenticates at the token endpoint.",
    )
    private_key: str | None = Field(
        default=None,
        repr=False,
        description="PEM private key signing the client assertion (private_key_jwt).",
    )
    private_key_id: str | None = Field(
        default=None, description="The kid of private_key, as registered at the provider."
    )
    scopes: StringList = Field(
        default_factory=lambda: ["openid", "email", "profile", "offline_access"],
        description="Scopes asked for (openid is always added).",
    )
    authorize_params: StringMap = Field(
        default_factory=dict,
        description='Extra parameters on the authorization request, e.g. {"prompt": '
        '"consent"}; the protocol\'s own parameters cannot be overridden.',
    )
    subject_claim: str = Field(default="sub", description="Claim naming the subject id.")
    email_claim: str = Field(default="email", description="Claim holding the email address.")
    name_claim: str = Field(default="name", description="Claim holding the display name.")
    groups_claim: str | None = Field(
        default=None, description="Claim listing the person's groups at the provider."
    )
    authz_claim: str | None = Field(
        default=None,
        description="The namespaced authorization claim (default: rbac.authz_claim).",
    )
    membership_from_claims: bool = Field(
        default=False,
        description="Take organization membership from the authz claim's orgIds.",
    )
    userinfo: bool = Field(
        default=True, description="Fetch the userinfo endpoint at sign-in when offered."
    )
    id_token_algorithms: StringList = Field(
        default_factory=lambda: ["RS256", "PS256", "ES256", "EdDSA"],
        description="Signature algorithms accepted on ID and logout tokens (asymmetric only).",
    )
    revoke_on_logout: bool = Field(
        default=True,
        description="Revoke the upstream refresh token at sign-out (RFC 7009) when offered.",
    )
    rp_logout: bool = Field(
        default=True,
        description="Send the browser to the provider's end_session_endpoint at sign-out.",
    )
    expose_access_token: bool = Field(
        default=False,
        description="Let GET /v1/me/token hand the signed-in person's upstream access token "
        "out (opt-in: it is an upstream credential).",
    )
    rotating_refresh_tokens: bool = Field(
        default=True,
        description="The provider may rotate refresh tokens (and revoke the family on reuse): a "
        "refresh interrupted mid-call then needs a new sign-in. false: the same refresh token "
        "may be presented again.",
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-32 of a-z, 0-9, - and _, starting with a letter or digit")
        return value

    @field_validator("client_id")
    @classmethod
    def _check_client_id(cls, value: str) -> str:
        if not value:
            raise ValueError("is required")
        return value

    @field_validator("id_token_algorithms")
    @classmethod
    def _check_algorithms(cls, value: list[str]) -> list[str]:
        refused = [alg for alg in value if alg not in ASYMMETRIC_ALGORITHMS]
        if refused:
            raise ValueError(
                f"{', '.join(refused)} refused: only asymmetric algorithms "
                f"({', '.join(sorted(ASYMMETRIC_ALGORITHMS))}); none and HMAC never"
            )
        if not value:
            raise ValueError("must name at least one algorithm")
        return value

    @field_validator("scopes")
    @classmethod
    def _with_openid(cls, value: list[str]) -> list[str]:
        return value if "openid" in value else ["openid", *value]

    @model_validator(mode="after")
    def _check_credentials(self) -> OidcProviderSettings:
        if self.client_auth_method is ClientAuthMethod.PRIVATE_KEY_JWT:
            if not self.private_key:
                raise ValueError("private_key_jwt needs private_key (a PEM private key)")
        elif not self.client_secret:
            raise ValueError(f"{self.client_auth_method.value} needs client_secret")
        return self


class OidcSettings(_Part):
    providers: list[OidcProviderSettings] = Field(
        default_factory=list,
        description="Upstream OpenID Connect providers ([[oidc.providers]] tables, or "
        "WATCHWORD_OIDC__PROVIDERS__0__ISSUER and so on by index).",
    )
    allow_insecure_http: bool = Field(
        default=False,
        description="Allow http:// issuers, and only on loopback hosts (tests, development).",
    )
    return_to_origins: StringList = Field(
        default_factory=list,
        description="Other origins (https://app.example.com) that return_to may lead to; "
        "paths on watchword's own origin are always allowed.",
    )
    leeway: Duration = Field(
        default=timedelta(seconds=60),
        description="Clock leeway for ID and logout token exp/iat (at most 5m).",
    )
    http_timeout: Duration = Field(
        default=timedelta(seconds=5),
        description="Timeout of each call to a provider (discovery, JWKS, token, userinfo, "
        "revocation).",
    )
    jwks_refresh_interval: Duration = Field(
        default=timedelta(seconds=60),
        description="Least time between JWKS re-fetches triggered by an unknown kid.",
    )
    signin_timeout: Duration = Field(
        default=timedelta(minutes=10),
        description="How long a started sign-in (state, nonce, PKCE verifier) stays usable.",
    )

    @field_validator("leeway")
    @classmethod
    def _check_leeway(cls, value: timedelta) -> timedelta:
        if value < timedelta(0) or value > MAX_LEEWAY:
            raise ValueError("must be between 0s and 5m")
        return value

    @field_validator("return_to_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        out = []
        for origin in value:
            parts = urlsplit(origin)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ValueError(f"{origin!r} is not an origin such as https://app.example.com")
            if parts.path not in {"", "/"} or parts.query or parts.fragment or parts.username:
                raise ValueError(f"{origin!r}: an origin has no path, query or credentials")
            if parts.scheme == "http" and not is_loopback_host(parts.hostname):
                # These origins may also make cookie-authenticated changes (CSRF check): a
                # plain-http page anyone on the network can alter is not trusted with that.
                raise ValueError(f"{origin!r}: only https origins (http only on loopback)")
            out.append(f"{parts.scheme}://{parts.netloc.lower()}")
        return out

    @model_validator(mode="after")
    def _check_providers(self) -> OidcSettings:
        seen: set[str] = set()
        for index, provider in enumerate(self.providers):
            where = f"providers[{index}]"
            if provider.name in seen:
                raise ValueError(f"{where}: name {provider.name!r} is used twice")
            seen.add(provider.name)
            parts = urlsplit(provider.issuer)
            if parts.scheme == "https" and parts.hostname:
                continue
            if parts.scheme == "http" and parts.hostname:
                if self.allow_insecure_http and is_loopback_host(parts.hostname):
                    continue
                raise ValueError(
                    f"{where}: issuer {provider.issuer!r} is plain http; only https, or a "
                    "loopback host with oidc.allow_insecure_http = true"
                )
            raise ValueError(f"{where}: issuer {provider.issuer!r} is not an https URL")
        return self


class RefresherSettings(_Part):
    grace: Duration = Field(
        default=timedelta(minutes=1),
        description="Refresh an upstream access token this long before it expires.",
    )
    cool_off: Duration = Field(
        default=timedelta(seconds=10),
        description="Least time between two refresh attempts of one session.",
    )
    backoff_initial: Duration = Field(
        default=timedelta(seconds=1), description="First wait after a temporary failure."
    )
    backoff_max: Duration = Field(
        default=timedelta(minutes=5), description="Longest wait between retries (jittered)."
    )
    userinfo_interval: Duration = Field(
        default=timedelta(minutes=15), description="Refresh user info this often per session."
    )
    pool_size: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=64, description="Refreshes running at once per process."
    )
    per_provider_limit: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=16, description="Refreshes running at once per process against one provider."
    )
    call_timeout: Duration = Field(
        default=timedelta(seconds=10), description="Timeout of one refresh call upstream."
    )
    shards: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=16, description="Work is split into this many shards, each held by a lease."
    )
    lease: Duration = Field(
        default=timedelta(seconds=30),
        description="Shard lease length: a dead replica's shards are taken over within it.",
    )
    poll_interval: Duration = Field(
        default=timedelta(seconds=5),
        description="How often a refresher looks for due sessions when nothing wakes it.",
    )
    in_serve: bool = Field(
        default=True, description="Run the refresher inside watchword serve too."
    )

    @model_validator(mode="after")
    def _check(self) -> RefresherSettings:
        if self.grace <= self.cool_off:
            raise ValueError("grace must be longer than cool_off")
        if self.backoff_max < self.backoff_initial or self.backoff_initial <= timedelta(0):
            raise ValueError("0 < backoff_initial <= backoff_max")
        if self.call_timeout >= self.lease:
            raise ValueError("call_timeout must be shorter than lease")
        return self


class SessionKey(_Part):
    id: str = Field(default="", description="Key id stored beside each ciphertext.")
    key: str = Field(default="", repr=False, description="At least 32 random characters (secret).")

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-32 of a-z, 0-9, - and _")
        return value

    @field_validator("key")
    @classmethod
    def _check_key(cls, value: str) -> str:
        if len(value) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_KEY_LENGTH} random characters")
        return value


class SessionSettings(_Part):
    keys: list[SessionKey] = Field(
        default_factory=list,
        description="Keys encrypting upstream tokens at rest: the first encrypts, all "
        "decrypt (add a new one first to rotate). Default: one derived from secret_key.",
    )
    cookie_name: str = Field(
        default="watchword_session",
        description="Session cookie name; outside development it gets the __Host- prefix "
        "and is Secure.",
    )
    absolute_timeout: Duration = Field(
        default=timedelta(hours=12), description="A session ends this long after sign-in."
    )
    idle_timeout: Duration = Field(
        default=timedelta(hours=1),
        description="A session ends after this long without a request (0: never).",
    )
    cache_ttl: Duration = Field(
        default=timedelta(seconds=10),
        description="How long a process trusts a cached session lookup; a session ended "
        "elsewhere is refused everywhere within this bound.",
    )

    @field_validator("cookie_name")
    @classmethod
    def _check_cookie_name(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9_-]{1,64}$", value) or value.startswith("__"):
            raise ValueError("must be 1-64 of A-Z, a-z, 0-9, - and _, not starting with __")
        return value

    @model_validator(mode="after")
    def _check_keys(self) -> SessionSettings:
        ids = [key.id for key in self.keys]
        if len(ids) != len(set(ids)):
            raise ValueError("keys: each key id must be used once")
        if self.absolute_timeout <= timedelta(0):
            raise ValueError("absolute_timeout must be positive")
        return self


_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")


class EdgeHeaders(_Part):
    """The names of the headers the edge sets for the app (each set or blanked on every
    answer, so a client's own never survives a proxy configured as docs/edge.md shows)."""

    subject: str = "X-Watchword-Subject"
    issuer: str = "X-Watchword-Issuer"
    email: str = "X-Watchword-Email"
    groups: str = "X-Watchword-Groups"
    organizations: str = "X-Watchword-Organizations"
    assertion: str = "X-Watchword-Jwt-Assertion"
    access_token: str = "X-Forwarded-Access-Token"  # noqa: S105 - a header name

    @model_validator(mode="after")
    def _check_names(self) -> EdgeHeaders:
        names = [getattr(self, f) for f in type(self).model_fields]
        for name in names:
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a header name (A-Z, a-z, 0-9 and -)")
        if len({n.lower() for n in names}) != len(names):
            raise ValueError("each header name must be used once")
        return self

    def names(self) -> tuple[str, ...]:
        return tuple(getattr(self, f) for f in type(self).model_fields)


class EdgeSettings(_Part):
    routes_file: str | None = Field(
        default=None,
        description="The forward-auth route table, a YAML or JSON file {routes: [...]} "
        "(docs/edge.md); checked for changes every reload_every and reloaded without a "
        "restart (a bad edit is refused and the active table kept).",
    )
    routes: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The route table inline (when routes_file is not set).",
    )
    reload_every: Duration = Field(
        default=timedelta(seconds=1), description="How often routes_file is checked."
    )
    trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"],
        description="Addresses (CIDR) whose X-Forwarded-* and X-Original-* headers are "
        "believed: for forward-auth's original request and for the client address. Loopback "
        "by default; never 0.0.0.0/0 unless nothing but the proxy can reach watchword.",
    )
    headers: EdgeHeaders = Field(default_factory=EdgeHeaders)
    assertion_lifetime: Duration = Field(
        default=timedelta(minutes=1),
        description="Lifetime of the signed identity assertion sent to apps that opt in.",
    )
    denial_log_rate: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        default=0.1, description="Fraction of forward-auth denials logged (edge_denied)."
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
        return value

    @model_validator(mode="after")
    def _check_routes(self) -> EdgeSettings:
        if self.routes_file and self.routes:
            raise ValueError("give the route table once: routes_file or routes, not both")
        return self


class Settings(BaseSettings):
    """Every setting of watchword: process-wide ones here, the others in their part's table."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, validate_default=True)

    env: Environment = Field(
        default=Environment.PRODUCTION,
        description="development migrates the database on start; production refuses a "
        "database whose schema is behind.",
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(default=8000, description="HTTP port.")
    server_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        default="auto",
        description="The event loop of `watchword serve`: auto is uvloop where installed "
        "(benchmarks/edge measures both).",
    )
    server_http: Literal["auto", "h11", "httptools"] = Field(
        default="auto",
        description="The HTTP/1.1 parser of `watchword serve`: auto is httptools where installed.",
    )
    issuer_url: str = Field(
        default="http://127.0.0.1:8000",
        description="watchword's own issuer URL; every issuer value it writes or compares for "
        "local subjects comes from here, never from a request's Host header.",
    )
    secret_key: str | None = Field(
        default=None,
        repr=False,
        description="At least 32 random characters; encrypts rotated token plaintexts cached in "
        "Redis (AES-GCM). Required only when redis.url is set and integration tokens rotate.",
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    authz: AuthzSettings = Field(default_factory=AuthzSettings)
    rbac: RbacSettings = Field(default_factory=RbacSettings)
    locks: LockSettings = Field(default_factory=LockSettings)
    tokens: TokenSettings = Field(default_factory=TokenSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    sessions: SessionSettings = Field(default_factory=SessionSettings)
    refresher: RefresherSettings = Field(default_factory=RefresherSettings)
    edge: EdgeSettings = Field(default_factory=EdgeSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings merges the sources itself and passes the result as init values, so
        # that one code path validates them all and tests can pass an environ.
        return (init_settings,)

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if len(value) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(
                f"must be at least {MIN_SECRET_KEY_LENGTH} random characters (it has "
                f"{len(value)}); e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        return _repr_args(self)

    @property
    def is_development(self) -> bool:
        return self.env is Environment.DEVELOPMENT

    def redacted(self) -> dict[str, object]:
        """The effective settings as plain nested values, every secret hidden."""
        return _redacted(self)


# Names of the flat layout, each an alias of its path in the nested one.
ALIASES: Mapping[str, tuple[str, ...]] = {
    "database_url": ("database", "url"),
    "database_connect_timeout": ("database", "connect_timeout"),
    "redis_url": ("redis", "url"),
    "redis_prefix": ("redis", "prefix"),
    "log_level": ("log", "level"),
    "log_format": ("log", "format"),
    "otlp_endpoint": ("telemetry", "otlp_endpoint"),
    "service_name": ("telemetry", "service_name"),
    "authz_observe_every": ("authz", "observe_every"),
    "decision_log_sample_rate": ("authz", "decision_log_sample_rate"),
    "authz_claim": ("rbac", "authz_claim"),
    "acl_cache_ttl": ("rbac", "acl_cache_ttl"),
    "lock_durable_grants": ("locks", "durable_grants"),
    "token_grace_period": ("tokens", "grace_period"),
    "token_rotation_cache_ttl": ("tokens", "rotation_cache_ttl"),
    "token_verify_cache_ttl": ("tokens", "verify_cache_ttl"),
    "token_retention": ("tokens", "retention"),
    "token_janitor_every": ("tokens", "janitor_every"),
}


def _redacted(model: BaseModel) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, field in type(model).model_fields.items():
        out[name] = _shown(getattr(model, name), secret=not field.repr)
    return out


def _shown(value: object, *, secret: bool) -> object:
    if value is None:
        return None
    if secret:
        return REDACTED
    if isinstance(value, BaseModel):
        return _redacted(value)
    if isinstance(value, list | tuple):
        return [_shown(item, secret=False) for item in value]
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, str):
        return redact_text(value)
    return value


# --- paths over the model tree ---

Key = tuple[str | int, ...]


def env_name(path: Key) -> str:
    """The environment variable of a setting: ``("tokens", "grace_period")`` →
    ``WATCHWORD_TOKENS__GRACE_PERIOD``."""
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(part).upper() for part in path)


def _dotted(path: Key) -> str:
    return ".".join(str(part) for part in path)


def _shape(annotation: Any) -> tuple[str, type[BaseModel] | None]:
    """``("table", model)``, ``("list", item model)`` or ``("value", None)``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table", annotation
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return "list", item
    return "value", None


def _leaf_paths(model: type[BaseModel], prefix: Key = ()) -> Iterator[Key]:
    """Every settable path (a list's items shown as item 0)."""
    for name, field in model.model_fields.items():
        kind, sub = _shape(field.annotation)
        if sub is None:
            yield (*prefix, name)
        else:
            yield from _leaf_paths(sub, (*prefix, name) if kind == "table" else (*prefix, name, 0))


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


class _Source:
    """The values one source gives, by path, each with the name the operator wrote."""

    def __init__(self) -> None:
        self.values: dict[Key, tuple[object, str]] = {}
        self.problems: list[str] = []

    def set(self, path: Key, value: object, name: str) -> None:
        previous = self.values.get(path)
        if previous is not None and previous[0] != value:
            self.problems.append(
                f"{previous[1]} and {name} set {_dotted(path)} to different values; "
                "keep one (the first is an alias of the second)"
            )
            return
        self.values[path] = (value, name)


def _env_values(environ: Mapping[str, str], model: type[BaseModel]) -> _Source:
    source = _Source()
    known = [env_name(path) for path in _leaf_paths(model)]
    known += [ENV_PREFIX + alias.upper() for alias in ALIASES]
    for key in sorted(environ):
        if not key.startswith(ENV_PREFIX) or key in _NOT_SETTINGS:
            continue
        if key.startswith(_NOT_SETTINGS_PREFIXES):
            continue
        name = key.removeprefix(ENV_PREFIX).lower()
        path = ALIASES.get(name) or _resolve(name.split(ENV_NESTED_DELIMITER), model)
        if path is None:
            source.problems.append(f"{key}: unknown setting{_suggest(key, known)}")
        else:
            source.set(path, environ[key], key)
    return source


def _resolve(parts: list[str], model: type[BaseModel]) -> Key | None:
    """The path that an environment name's parts spell, if it names one value."""
    path: list[str | int] = []
    current: type[BaseModel] | None = model
    index_next = False
    for part in parts:
        if index_next:
            if not part.isdigit():
                return None
            path.append(int(part))
            index_next = False
            continue
        if current is None:
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        path.append(part)
        kind, current = _shape(field.annotation)
        index_next = kind == "list"
    return tuple(path) if current is None and not index_next else None


def _table_values(
    table: Mapping[str, object], model: type[BaseModel], where: str, source: _Source
) -> None:
    """Walk a TOML-shaped table: aliases at its top, then the model's fields."""
    known = [_dotted(path) for path in _leaf_paths(model)] + sorted(ALIASES)

    def walk(node: Mapping[str, object], current: type[BaseModel], prefix: Key) -> None:
        for key, value in node.items():
            path = (*prefix, key)
            if not prefix and key in ALIASES:
                source.set(ALIASES[key], value, f"{key}{where}")
                continue
            field = current.model_fields.get(key)
            if field is None:
                source.problems.append(
                    f"{_dotted(path)}{where}: unknown setting{_suggest(_dotted(path), known)}"
                )
                continue
            kind, sub = _shape(field.annotation)
            if sub is None:
                source.set(path, value, f"{_dotted(path)}{where}")
            elif kind == "table" and isinstance(value, Mapping):
                walk(value, sub, path)
            elif kind == "list" and isinstance(value, list):
                for index, item in enumerate(value):
                    if not isinstance(item, Mapping):
                        source.problems.append(f"{_dotted(path)}{where}: must be tables")
                        break
                    walk(item, sub, (*path, index))
            else:
                shape = "a table" if kind == "table" else "an array of tables"
                source.problems.append(f"{_dotted(path)}{where}: must be {shape}")

    walk(table, model, ())


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"config file {str(path)!r} cannot be read: {exc.strerror}"
        ) from None
    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    if "watchword" not in data:
        return data
    section = data["watchword"]
    if not isinstance(section, dict):
        raise ConfigurationError(f"config file {str(path)!r}: [watchword] must be a table")
    # Either everything under [watchword] or nothing: keys beside it would otherwise be
    # silently ignored, unknown ones included.
    outside = sorted(set(data) - {"watchword"})
    if outside:
        raise ConfigurationError(
            f"config file {str(path)!r} has settings both under [watchword] and outside it "
            f"({', '.join(outside)}); put them all under [watchword] (as [watchword.<part>] "
            "tables) or drop the [watchword] table"
        )
    return section


def _tree(values: Mapping[Key, tuple[object, str]]) -> dict[str, Any]:
    """Nested init values from leaf paths; integer parts become list indices."""
    root: dict[str | int, Any] = {}
    for path, (value, _name) in values.items():
        node = root
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value

    def listify(node: object) -> object:
        if not isinstance(node, dict):
            return node
        items = {key: listify(value) for key, value in node.items()}
        if items and all(isinstance(key, int) for key in items):
            return [items.get(index, {}) for index in range(max(items) + 1)]
        return items

    return listify(root)  # type: ignore[return-value]


def load_settings(
    config_file: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build validated settings or raise one ConfigurationError naming every bad setting.

    ``overrides`` take the config file's shape: ``tokens={"grace_period": "1h"}``, a
    process-wide name (``port=9000``) or an alias (``database_url=…``).
    """
    env = os.environ if environ is None else environ
    sources = [_env_values(env, Settings)]
    path = config_file or env.get("WATCHWORD_CONFIG_FILE")
    if path:
        file_source = _Source()
        _table_values(_read_file(Path(path)), Settings, f" (in {path})", file_source)
        sources.insert(0, file_source)
    override_source = _Source()
    _table_values(overrides, Settings, " (override)", override_source)
    sources.append(override_source)
    problems = [problem for source in sources for problem in source.problems]
    if problems:
        raise ConfigurationError("invalid configuration:\n  " + "\n  ".join(problems))
    merged: dict[Key, tuple[object, str]] = {}
    for source in sources:
        merged.update(source.values)
    try:
        return Settings(**_tree(merged))
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False, include_input=False):
            loc = tuple(error["loc"])
            name = merged[loc][1] if loc in merged else env_name(loc)
            msg = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{name}: {msg}")
        raise ConfigurationError("invalid configuration:\n  " + "\n  ".join(lines)) from None
