"""Settings, read from ``WATCHWORD_*`` environment variables and an optional TOML file.

Precedence, highest first: environment variables, the config file named by
``--config`` or ``WATCHWORD_CONFIG_FILE``, defaults. Nothing is read at import time:
:func:`load_settings` builds a :class:`Settings` when asked, and turns every validation
problem into one :class:`~watchword.errors.ConfigurationError` that names the setting.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from watchword.errors import ConfigurationError
from watchword.observability.redaction import redact_text
from watchword.secret import REDACTED

__all__ = [
    "ENV_PREFIX",
    "Duration",
    "Environment",
    "LogFormat",
    "Settings",
    "load_settings",
    "parse_duration",
]

ENV_PREFIX = "WATCHWORD_"
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


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


class Settings(BaseSettings):
    """Every setting of watchword; the env var is ``WATCHWORD_`` + the upper-cased name."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    env: Environment = Field(
        default=Environment.PRODUCTION,
        description="development migrates the database on start; production refuses a "
        "database whose schema is behind.",
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(default=8000, description="HTTP port.")
    database_url: str = Field(
        default="sqlite+aiosqlite:///watchword.sqlite3",
        description="SQLAlchemy URL: sqlite+aiosqlite:///file or postgresql+psycopg://…",
    )
    database_connect_timeout: Duration = Field(default=timedelta(seconds=5))
    redis_url: str | None = Field(
        default=None, description="redis://host:port/db; enables the shared cache and locks."
    )
    redis_prefix: str = Field(default="watchword:", description="Prefix of every Redis key.")
    log_level: str = Field(default="info")
    log_format: LogFormat = Field(default=LogFormat.JSON)
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces endpoint (e.g. http://127.0.0.1:4318/v1/traces); "
        "unset means no traces are exported.",
    )
    service_name: str = Field(default="watchword")
    authz_observe_every: Annotated[int, Field(ge=1)] = Field(
        default=256,
        description="Time and trace one authorization check in N (1 = every call). A timed, "
        "traced check costs ~6 µs against ~0.3 µs for the check itself (benchmarks/authz).",
    )
    decision_log_sample_rate: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        default=0.0, description="Fraction of authorization decisions logged (0 = off)."
    )

    # --- identity and RBAC ---
    issuer_url: str = Field(
        default="http://127.0.0.1:8000",
        description="watchword's own issuer URL; every issuer value it writes or compares for "
        "local subjects comes from here, never from a request's Host header.",
    )
    authz_claim: str = Field(
        default="https://watchword.dev/authz",
        description="Namespaced userinfo/token claim carrying {acctype, orgIds}.",
    )
    acl_cache_ttl: Duration = Field(
        default=timedelta(seconds=60), description="Upper bound on a cached ACL's staleness."
    )

    # --- locks ---
    lock_durable_grants: bool = Field(
        default=True,
        description="PostgreSQL lock grants wait for the WAL flush, so a database crash cannot "
        "lose one. Off: hand-offs about 2x faster; a crash may then let a lost grant's holder "
        "overlap its successor, whose newer fencing number refuses the old holder's writes.",
    )

    # --- API tokens ---
    token_grace_period: Duration = Field(
        default=timedelta(days=1),
        description="How long a rotated integration token stays valid.",
    )
    token_rotation_cache_ttl: Duration = Field(
        default=timedelta(hours=1),
        description="How long a rotated integration token is served from cache before rotating.",
    )
    token_verify_cache_ttl: Duration = Field(
        default=timedelta(seconds=30),
        description="How long a verified token is trusted from cache: the revocation bound.",
    )
    secret_key: str | None = Field(
        default=None,
        repr=False,
        description="At least 32 random characters; encrypts rotated token plaintexts cached in "
        "Redis (AES-GCM). Required only when redis_url is set and integration tokens rotate.",
    )
    token_retention: Duration = Field(
        default=timedelta(days=7),
        description="How long the janitor keeps expired tokens before deleting them.",
    )
    token_janitor_every: Duration = Field(
        default=timedelta(days=1),
        description="How often a serving process runs the token janitor (under a lease, so "
        "one replica at a time).",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        from watchword.storage.db import normalize_url

        try:
            normalize_url(value)
        except ConfigurationError as exc:
            raise ValueError(exc.detail) from None
        return value

    @field_validator("redis_url", "otlp_endpoint")
    @classmethod
    def _check_url(cls, value: str | None, info: Any) -> str | None:
        if value is None or value == "":
            return None
        allowed = (
            ("redis://", "rediss://", "unix://")
            if info.field_name == "redis_url"
            else (
                "http://",
                "https://",
            )
        )
        if not value.startswith(allowed):
            raise ValueError(f"must start with one of {', '.join(allowed)}")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        levels = {"debug", "info", "warning", "error", "critical"}
        if value.lower() not in levels:
            raise ValueError(f"must be one of {', '.join(sorted(levels))}")
        return value.lower()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings merges the environment over the config file and passes the result
        # as init values, so that one code path validates both and tests can pass an environ.
        return (init_settings,)

    @property
    def is_development(self) -> bool:
        return self.env is Environment.DEVELOPMENT

    def redacted(self) -> dict[str, object]:
        """The effective settings as plain values, every secret hidden."""
        from watchword.storage.db import redacted_url

        out: dict[str, object] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in {"database_url", "redis_url"} and value is not None:
                value = redacted_url(value) if name == "database_url" else redact_text(value)
            elif isinstance(value, timedelta):
                value = f"{value.total_seconds():g}s"
            elif isinstance(value, StrEnum):
                value = value.value
            elif _looks_secret(name) and value is not None:
                value = REDACTED
            out[name] = value
        return out


# Settings whose values are secrets: `config show` and logs print them redacted.
SECRET_SETTINGS = frozenset({"secret_key"})


def _looks_secret(name: str) -> bool:
    return name in SECRET_SETTINGS


def _env_name(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + str(loc[0]).upper() if loc else ENV_PREFIX + "?"


def _unknown_env(environ: Mapping[str, str]) -> list[str]:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    problems = []
    for key in sorted(environ):
        if not key.startswith(ENV_PREFIX) or key in known or key in _NOT_SETTINGS:
            continue
        if key.startswith(_NOT_SETTINGS_PREFIXES):
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{key}: unknown setting{hint}")
    return problems


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
    section = data.get("watchword", data)
    if not isinstance(section, dict):
        raise ConfigurationError(f"config file {str(path)!r}: [watchword] must be a table")
    return section


def load_settings(
    config_file: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build validated settings or raise one ConfigurationError naming every bad setting."""
    env = os.environ if environ is None else environ
    problems = _unknown_env(env)
    file_values: dict[str, Any] = {}
    path = config_file or env.get("WATCHWORD_CONFIG_FILE")
    if path:
        file_values = _read_file(Path(path))
        for key in sorted(set(file_values) - set(Settings.model_fields)):
            close = difflib.get_close_matches(key, sorted(Settings.model_fields), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"{key} (in {path}): unknown setting{hint}")
            file_values.pop(key)
    if problems:
        raise ConfigurationError("invalid configuration:\n  " + "\n  ".join(problems))
    env_values = {
        name: env[ENV_PREFIX + name.upper()]
        for name in Settings.model_fields
        if ENV_PREFIX + name.upper() in env
    }
    try:
        return Settings(**{**file_values, **env_values, **overrides})
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False, include_input=False):
            msg = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{_env_name(error['loc'])}: {msg}")
        raise ConfigurationError("invalid configuration:\n  " + "\n  ".join(lines)) from None
