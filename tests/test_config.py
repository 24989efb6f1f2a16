from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from watchword.config import Environment, load_settings
from watchword.errors import ConfigurationError


def test_config_defaults_are_embedded_sqlite_on_loopback() -> None:
    s = load_settings(environ={})
    assert s.database_url.startswith("sqlite+aiosqlite:///")
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.env is Environment.PRODUCTION and s.redis_url is None


def test_config_env_overrides_file(tmp_path: Path) -> None:
    cfg = tmp_path / "ww.toml"
    cfg.write_text('[watchword]\nport = 9100\nlog_level = "debug"\n')
    s = load_settings(cfg, environ={"WATCHWORD_PORT": "9200"})
    assert s.port == 9200 and s.log_level == "debug"


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


def test_config_unreadable_or_invalid_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_settings(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("port = = 3")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_settings(bad, environ={})


def test_config_durations_accept_units() -> None:
    s = load_settings(environ={"WATCHWORD_DATABASE_CONNECT_TIMEOUT": "1500ms"})
    assert s.database_connect_timeout == timedelta(seconds=1.5)
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


def test_config_redis_url_must_be_redis() -> None:
    with pytest.raises(ConfigurationError, match="WATCHWORD_REDIS_URL"):
        load_settings(environ={"WATCHWORD_REDIS_URL": "http://x"})


def test_config_secret_key_is_redacted_but_durations_are_shown() -> None:
    s = load_settings(environ={"WATCHWORD_SECRET_KEY": "k" * 40})
    shown = s.redacted()
    assert shown["secret_key"] != "k" * 40 and "k" * 40 not in repr(shown)
    assert shown["token_grace_period"] == "86400s"
    assert "k" * 40 not in repr(s)


def test_config_every_setting_is_documented() -> None:
    from watchword.config import Settings

    doc = (Path(__file__).parents[1] / "docs" / "operations.md").read_text()
    missing = [n for n in Settings.model_fields if f"`WATCHWORD_{n.upper()}" not in doc]
    assert missing == []
