from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from watchword.config import (
    ALIASES,
    Environment,
    Settings,
    _env_values,
    _leaf_paths,
    _Source,
    _table_values,
    _tree,
    env_name,
    load_settings,
)
from watchword.errors import ConfigurationError


def test_config_defaults_are_embedded_sqlite_on_loopback() -> None:
    s = load_settings(environ={})
    assert s.database.url.startswith("sqlite+aiosqlite:///")
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.env is Environment.PRODUCTION and s.redis.url is None


def test_config_env_overrides_file(tmp_path: Path) -> None:
    cfg = tmp_path / "ww.toml"
    cfg.write_text('[watchword]\nport = 9100\nlog_level = "debug"\n')
    s = load_settings(cfg, environ={"WATCHWORD_PORT": "9200"})
    assert s.port == 9200 and s.log.level == "debug"


def test_config_bad_values_name_each_setting() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(
            environ={"WATCHWORD_PORT": "eighty", "WATCHWORD_DATABASE_URL": "mysql://db/x"}
        )
    assert "WATCHWORD_PORT" in info.value.detail
    assert "WATCHWORD_DATABASE_URL" in info.value.detail and "mysql" in info.value.detail


def test_config_unknown_env_setting_suggests_the_right_one() -> None:
    with pytest.raises(ConfigurationError, match="did you mean WATCHWORD_DATABASE_URL"):
        load_settings(environ={"WATCHWORD_DATABSE_URL": "sqlite:///x"})


def test_config_unknown_file_key_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "ww.toml"
    cfg.write_text("prot = 1\n")
    with pytest.raises(ConfigurationError, match=r"prot.*unknown setting"):
        load_settings(cfg, environ={})


def test_config_file_mixing_top_level_keys_and_watchword_table_is_refused(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "ww.toml"
    cfg.write_text('port = 9100\nprot = 1\n[watchword]\nhost = "0.0.0.0"\n')
    with pytest.raises(ConfigurationError, match=r"both under \[watchword\].*\(port, prot\)"):
        load_settings(cfg, environ={})
    cfg.write_text('[tokens]\nretention = "1d"\n[watchword]\nhost = "0.0.0.0"\n')
    with pytest.raises(ConfigurationError, match=r"\(tokens\)"):
        load_settings(cfg, environ={})


def test_config_unreadable_or_invalid_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_settings(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("port = = 3")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_settings(bad, environ={})


def test_config_durations_accept_units() -> None:
    s = load_settings(environ={"WATCHWORD_DATABASE_CONNECT_TIMEOUT": "1500ms"})
    assert s.database.connect_timeout == timedelta(seconds=1.5)
    with pytest.raises(ConfigurationError, match="duration"):
        load_settings(environ={"WATCHWORD_DATABASE_CONNECT_TIMEOUT": "soon"})


def test_config_redacted_hides_passwords() -> None:
    s = load_settings(
        environ={
            "WATCHWORD_DATABASE_URL": "postgresql+psycopg://app:s3cret@db/ww",
            "WATCHWORD_REDIS_URL": "redis://default:r3dis@cache:6379/0",
        }
    )
    shown = repr(s.redacted())
    assert "s3cret" not in shown and "r3dis" not in shown
    assert "app" in shown and "cache:6379" in shown


def test_config_malformed_ipv6_urls_get_a_clear_message() -> None:
    for name, url in (
        ("WATCHWORD_DATABASE_URL", "postgresql://u:p@[::1:5432/db"),
        ("WATCHWORD_REDIS_URL", "redis://[::1:6379/0"),
    ):
        with pytest.raises(ConfigurationError, match=f"{name}: .*IPv6") as info:
            load_settings(environ={name: url})
        assert "invalid literal" not in info.value.detail


def test_config_redis_url_must_be_redis() -> None:
    with pytest.raises(ConfigurationError, match="WATCHWORD_REDIS_URL"):
        load_settings(environ={"WATCHWORD_REDIS_URL": "http://x"})


def test_config_secret_key_is_redacted_but_durations_are_shown() -> None:
    s = load_settings(environ={"WATCHWORD_SECRET_KEY": "k" * 40})
    shown = s.redacted()
    assert shown["secret_key"] != "k" * 40 and "k" * 40 not in repr(shown)
    assert shown["tokens"] == {
        "grace_period": "86400s",
        "rotation_cache_ttl": "3600s",
        "verify_cache_ttl": "30s",
        "retention": "604800s",
        "janitor_every": "86400s",
    }
    assert "k" * 40 not in repr(s)


def test_config_secret_key_shorter_than_32_characters_is_refused_at_load() -> None:
    with pytest.raises(
        ConfigurationError, match="WATCHWORD_SECRET_KEY: must be at least 32"
    ) as info:
        load_settings(environ={"WATCHWORD_SECRET_KEY": "short-s3cret"})
    assert "short-s3cret" not in info.value.detail
    assert load_settings(environ={"WATCHWORD_SECRET_KEY": "k" * 32}).secret_key == "k" * 32
    assert load_settings(environ={"WATCHWORD_SECRET_KEY": ""}).secret_key is None


def test_config_every_setting_and_alias_is_documented() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "operations.md").read_text()
    names = [env_name(path) for path in _leaf_paths(Settings)]
    names += [f"WATCHWORD_{alias.upper()}" for alias in ALIASES]
    assert names and [name for name in names if f"`{name}`" not in doc] == []


def test_config_nested_env_names_and_tables() -> None:
    s = load_settings(
        environ={"WATCHWORD_TOKENS__GRACE_PERIOD": "2h", "WATCHWORD_DATABASE__URL": "sqlite://"}
    )
    assert s.tokens.grace_period == timedelta(hours=2)
    assert s.database.url == "sqlite://"


def test_config_file_tables_with_or_without_watchword_table(tmp_path: Path) -> None:
    bare = tmp_path / "bare.toml"
    bare.write_text('port = 9100\n[tokens]\ngrace_period = "1h"\n[log]\nlevel = "debug"\n')
    wrapped = tmp_path / "wrapped.toml"
    wrapped.write_text('[watchword]\nport = 9100\n[watchword.tokens]\ngrace_period = "1h"\n')
    for cfg in (bare, wrapped):
        s = load_settings(cfg, environ={})
        assert s.port == 9100 and s.tokens.grace_period == timedelta(hours=1)
    assert load_settings(bare, environ={}).log.level == "debug"


def test_config_old_flat_names_are_aliases_of_the_new_paths(tmp_path: Path) -> None:
    s = load_settings(
        environ={
            "WATCHWORD_TOKEN_GRACE_PERIOD": "3h",
            "WATCHWORD_DATABASE_URL": "sqlite://",
            "WATCHWORD_REDIS_URL": "redis://cache:6379/0",
            "WATCHWORD_LOCK_DURABLE_GRANTS": "false",
        }
    )
    assert s.tokens.grace_period == timedelta(hours=3) and s.database.url == "sqlite://"
    assert s.redis.url == "redis://cache:6379/0" and s.locks.durable_grants is False
    cfg = tmp_path / "flat.toml"
    cfg.write_text('[watchword]\ntoken_retention = "2d"\nlog_format = "console"\n')
    s = load_settings(cfg, environ={})
    assert s.tokens.retention == timedelta(days=2) and s.log.format == "console"


def test_config_alias_and_new_name_with_different_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(
            environ={
                "WATCHWORD_TOKEN_GRACE_PERIOD": "3h",
                "WATCHWORD_TOKENS__GRACE_PERIOD": "4h",
            }
        )
    assert "WATCHWORD_TOKEN_GRACE_PERIOD" in info.value.detail
    assert "WATCHWORD_TOKENS__GRACE_PERIOD" in info.value.detail
    cfg = tmp_path / "both.toml"
    cfg.write_text('redis_prefix = "a:"\n[redis]\nprefix = "b:"\n')
    with pytest.raises(ConfigurationError, match=r"redis_prefix .*and redis\.prefix"):
        load_settings(cfg, environ={})
    same = {"WATCHWORD_REDIS_PREFIX": "a:", "WATCHWORD_REDIS__PREFIX": "a:"}
    assert load_settings(environ=same).redis.prefix == "a:"


def test_config_environment_beats_file_across_old_and_new_names(tmp_path: Path) -> None:
    cfg = tmp_path / "ww.toml"
    cfg.write_text('[tokens]\ngrace_period = "1h"\n')
    s = load_settings(cfg, environ={"WATCHWORD_TOKEN_GRACE_PERIOD": "2h"})
    assert s.tokens.grace_period == timedelta(hours=2)


def test_config_unknown_nested_names_suggest_the_right_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="did you mean WATCHWORD_TOKENS__GRACE_PERIOD"):
        load_settings(environ={"WATCHWORD_TOKENS__GRACE_PERIDO": "1h"})
    with pytest.raises(ConfigurationError, match="WATCHWORD_TOKENS: unknown setting"):
        load_settings(environ={"WATCHWORD_TOKENS": "1h"})
    cfg = tmp_path / "ww.toml"
    cfg.write_text('[tokens]\ngrace_peroid = "1h"\n[database]\nurl = 1\nurl_x = 2\n')
    with pytest.raises(ConfigurationError) as info:
        load_settings(cfg, environ={})
    assert "tokens.grace_peroid" in info.value.detail
    assert "did you mean tokens.grace_period" in info.value.detail
    assert "database.url_x" in info.value.detail
    cfg.write_text('tokens = "1h"\n')
    with pytest.raises(ConfigurationError, match=r"tokens .*must be a table"):
        load_settings(cfg, environ={})


def test_config_bad_nested_value_is_named_as_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="WATCHWORD_TOKENS__RETENTION: must be a duration"):
        load_settings(environ={"WATCHWORD_TOKENS__RETENTION": "soon"})
    cfg = tmp_path / "ww.toml"
    cfg.write_text('[tokens]\nretention = "soon"\n')
    with pytest.raises(ConfigurationError, match=r"tokens\.retention \(in .*\): must be a dur"):
        load_settings(cfg, environ={})


def test_config_repr_carries_no_password_or_secret() -> None:
    s = load_settings(
        environ={
            "WATCHWORD_DATABASE_URL": "postgresql+psycopg://app:s3cret@db/ww",
            "WATCHWORD_REDIS_URL": "redis://:r3dis@cache:6379/0",
            "WATCHWORD_SECRET_KEY": "k" * 40,
        }
    )
    for text in (repr(s), str(s), repr(s.database), repr(s.redis)):
        assert "s3cret" not in text and "r3dis" not in text and "k" * 40 not in text
    assert "db/ww" in repr(s) and "cache:6379" in repr(s)


class _Provider(BaseModel):
    issuer: str
    client_secret: str | None = None


class _Oidc(BaseModel):
    providers: list[_Provider] = []


class _WithLists(BaseModel):
    port: int = 1
    oidc: _Oidc = _Oidc()


def test_config_loader_takes_lists_of_tables_from_toml_and_env() -> None:
    # The shape oidc.providers will have: [[oidc.providers]] in TOML, items by index in env.
    table = tomllib.loads(
        '[[oidc.providers]]\nissuer = "https://a"\n[[oidc.providers]]\nissuer = "https://b"\n'
    )
    file_source = _Source()
    _table_values(table, _WithLists, " (in f)", file_source)
    env = {
        "WATCHWORD_OIDC__PROVIDERS__1__CLIENT_SECRET": "s",
        "WATCHWORD_OIDC__PROVIDERS__X__ISSUER": "bad index",
    }
    env_source = _env_values(env, _WithLists)
    assert env_source.problems == [
        "WATCHWORD_OIDC__PROVIDERS__X__ISSUER: unknown setting "
        "(did you mean WATCHWORD_OIDC__PROVIDERS__0__ISSUER?)"
    ]
    loaded = _WithLists(**_tree({**file_source.values, **env_source.values}))
    assert loaded.oidc.providers == [
        _Provider(issuer="https://a"),
        _Provider(issuer="https://b", client_secret="s"),
    ]


def _provider(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "idp",
        "issuer": "https://idp.example.com",
        "client_id": "c",
        "client_secret": "s",
    }
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("oidc", "message"),
    [
        ({"providers": [_provider(issuer="http://idp.example.com")]}, "plain http"),
        (
            {"allow_insecure_http": True, "providers": [_provider(issuer="http://10.0.0.1")]},
            "plain http",
        ),
        ({"providers": [_provider(issuer="http://127.0.0.1:9000")]}, "allow_insecure_http"),
        ({"providers": [_provider(issuer="ftp://idp")]}, "not an https URL"),
        ({"providers": [_provider(id_token_algorithms=["HS256"])]}, "HS256"),
        ({"providers": [_provider(id_token_algorithms="none,RS256")]}, "none"),
        ({"providers": [_provider(), _provider()]}, "used twice"),
        ({"providers": [_provider(name="Bad Name")]}, "a-z"),
        ({"providers": [_provider(client_secret=None)]}, "needs client_secret"),
        ({"providers": [_provider(client_auth_method="private_key_jwt")]}, "private_key"),
        ({"leeway": "10m"}, "between 0s and 5m"),
        ({"return_to_origins": ["https://app.example.com/path"]}, "no path"),
        ({"return_to_origins": "javascript:x"}, "not an origin"),
    ],
)
def test_config_oidc_refuses_unsafe_provider_settings(
    oidc: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(environ={}, oidc=oidc)


def test_config_oidc_loopback_http_with_the_setting_and_lists_from_env() -> None:
    settings = load_settings(
        environ={
            "WATCHWORD_OIDC__ALLOW_INSECURE_HTTP": "true",
            "WATCHWORD_OIDC__RETURN_TO_ORIGINS": "https://App.example.com, https://b.example",
            "WATCHWORD_OIDC__PROVIDERS__0__NAME": "local",
            "WATCHWORD_OIDC__PROVIDERS__0__ISSUER": "http://127.0.0.1:9000",
            "WATCHWORD_OIDC__PROVIDERS__0__CLIENT_ID": "c",
            "WATCHWORD_OIDC__PROVIDERS__0__CLIENT_SECRET": "very-secret",
            "WATCHWORD_OIDC__PROVIDERS__0__SCOPES": "email groups",
            "WATCHWORD_OIDC__PROVIDERS__0__AUTHORIZE_PARAMS": '{"prompt": "consent"}',
            "WATCHWORD_SESSIONS__KEYS__0__ID": "k1",
            "WATCHWORD_SESSIONS__KEYS__0__KEY": "k" * 32,
        }
    )
    (provider,) = settings.oidc.providers
    assert provider.scopes == ["openid", "email", "groups"]
    assert provider.authorize_params == {"prompt": "consent"}
    assert settings.oidc.return_to_origins == ["https://app.example.com", "https://b.example"]
    shown = settings.redacted()
    assert "very-secret" not in repr(settings) and "very-secret" not in str(shown)
    assert "k" * 32 not in repr(settings) and "k" * 32 not in str(shown)


def test_config_session_keys_are_at_least_32_characters_and_ids_unique() -> None:
    with pytest.raises(ConfigurationError, match="at least 32"):
        load_settings(environ={}, sessions={"keys": [{"id": "a", "key": "short"}]})
    with pytest.raises(ConfigurationError, match="used once"):
        load_settings(
            environ={},
            sessions={"keys": [{"id": "a", "key": "a" * 32}, {"id": "a", "key": "b" * 32}]},
        )
