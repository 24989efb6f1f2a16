from __future__ import annotations

from watchword import tokens


def test_tokens_public_api_is_exactly_the_curated_names() -> None:
    assert sorted(tokens.__all__) == [
        "IssuedToken",
        "NewToken",
        "Owner",
        "Permission",
        "SCANNER_REGEX",
        "TokenKind",
        "TokenPage",
        "TokenRecord",
        "TokenService",
        "TokenState",
        "looks_like_token",
        "parse",
    ]
    for name in tokens.__all__:
        assert getattr(tokens, name) is not None
