"""return_to: paths on watchword's own origin and configured origins, no open redirects."""

from __future__ import annotations

import pytest

from watchword.errors import ReturnToRefused
from watchword.federation.returnto import ReturnTo, origin_of

RULE = ReturnTo("https://auth.example.com", ["https://app.example.com"])


@pytest.mark.parametrize(
    "value",
    [
        "/",
        "/app?x=1#frag",
        "/a/b/../c",
        "https://auth.example.com/x",
        "https://AUTH.example.com:443/x",
        "https://app.example.com/dashboard",
    ],
)
def test_allowed_destinations_pass_unchanged(value: str) -> None:
    assert RULE.check(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "//evil.example",
        "//evil.example/path",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example",
        "https://app.example.com.evil.example/",
        "https://evil.example@app.example.com/",
        "https://user:pw@app.example.com/",
        "http://app.example.com/",  # another scheme is another origin
        "https://app.example.com:8443/",
        "javascript:alert(1)",
        "data:text/html,hi",
        "/ok\r\nSet-Cookie: x=1",
        "/\tevil",
        "evil.example",
        "https:/evil.example",
        "https://[::1/",
        "/" + "a" * 2048,
    ],
)
def test_open_redirects_are_refused_with_a_stable_code(value: str) -> None:
    with pytest.raises(ReturnToRefused) as caught:
        RULE.check(value)
    assert caught.value.code == "return_to_refused"


def test_absent_means_the_default() -> None:
    assert RULE.check(None) == "/" and RULE.check("", default="/home") == "/home"


def test_origin_of_normalizes_and_never_raises() -> None:
    assert origin_of("HTTPS://Example.COM:443/x?y") == "https://example.com"
    assert origin_of("http://[::1]:8080/") == "http://[::1]:8080"
    assert origin_of("http://[::1/") == "null"
    assert origin_of("not a url") == "null"
