from __future__ import annotations

import json

import httpx
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from watchword.observability.logging import LogFormat, configure_logging
from watchword.observability.redaction import _PATTERNS, redact_text, redact_value
from watchword.secret import Secret


def test_redact_text_masks_tokens_bearer_and_url_passwords() -> None:
    line = (
        "got wwb_abcdefghijklmnopqrstuvwxyz0123 and Bearer eyJhbGciOi.xyz.abc "
        "from postgresql://app:s3cret@db/x"
    )
    out = redact_text(line)
    assert "abcdefghijklmnop" not in out
    assert "eyJhbGciOi" not in out
    assert "s3cret" not in out and "app:" in out
    # Redis URLs usually carry a password with an empty user name.
    assert redact_text("redis://:r3dis@cache:6379/0") == "redis://:**********@cache:6379/0"
    assert redact_text("see https://example.com/a@b") == "see https://example.com/a@b"


def test_redact_text_masks_secret_query_and_connection_string_parameters() -> None:
    out = redact_text("postgresql://app@db/x?sslmode=require&password=s3cret&Api_Key=k3y")
    assert "s3cret" not in out and "k3y" not in out
    assert out.startswith("postgresql://app@db/x?sslmode=require&password=")
    assert "t0k" not in redact_text("https://otlp.example/v1/traces?access_token=t0k#frag")
    assert "pw" not in redact_text("connection to host=db user=app password=pw failed")
    assert redact_text("sslmode=require keepalives=1") == "sslmode=require keepalives=1"


def test_redact_value_by_key_name_and_secret_type() -> None:
    assert redact_value("password", "pw") != "pw"
    assert redact_value("client_secret", "x") != "x"
    assert redact_value("anything", Secret("v")) != "v"
    nested = redact_value("ctx", {"headers": {"Authorization": "Basic abc"}, "user": "alice"})
    assert nested["headers"]["Authorization"] != "Basic abc" and nested["user"] == "alice"


async def test_logs_carry_request_id_and_never_secrets(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", LogFormat.JSON)
    try:
        r = await client.get(
            "/v1/admin/whoami",
            headers={"X-Request-ID": "req-42", "Authorization": "Bearer wwb_" + "Q" * 40},
        )
        structlog.get_logger("t").info("probe", token="wwi_" + "Z" * 30)
    finally:
        structlog.reset_defaults()
    assert r.status_code == 401
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    request_lines = [x for x in lines if x.get("event") == "request"]
    assert request_lines and all(x["request_id"] == "req-42" for x in request_lines)
    text = json.dumps(lines)
    assert "Q" * 40 not in text and "Z" * 30 not in text


@given(
    st.lists(
        st.sampled_from(
            [
                "wwp_",
                "ww_",
                "A1b2C3d4E5f6G7h8I9j0K",
                "Bearer ",
                "basic ",
                "://u:",
                "@h",
                "=",
                "password",
                "key",
                " ",
                "&",
                "x",
                "/",
            ]
        )
        | st.text(max_size=6),
        max_size=12,
    ).map("".join)
)
def test_the_quick_pre_check_changes_no_answer(text: str) -> None:
    def without_pre_check(value: str) -> str:
        for pattern, replacement in _PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    assert redact_text(text) == without_pre_check(text)
