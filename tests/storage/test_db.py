from __future__ import annotations

from watchword.storage.db import describe_error, redacted_url


def test_redacted_url_hides_userinfo_and_query_passwords() -> None:
    shown = redacted_url("postgresql+psycopg://app:s3cret@db/ww?password=q3ery&sslmode=require")
    assert "s3cret" not in shown and "q3ery" not in shown
    assert shown.startswith("postgresql+psycopg://app:") and "sslmode=require" in shown


def test_describe_error_masks_query_string_secrets() -> None:
    error = OSError("cannot connect to postgresql://app@db/ww?password=q3ery: refused")
    assert "q3ery" not in describe_error(error) and "refused" in describe_error(error)
