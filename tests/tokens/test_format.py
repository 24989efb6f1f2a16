from __future__ import annotations

import re
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchword.errors import TokenMalformed
from watchword.tokens.format import (
    BASE62,
    BODY_LENGTH,
    SCANNER_REGEX,
    TOKEN_LENGTH,
    TokenKind,
    base62,
    checksum,
    compose,
    display_prefix,
    looks_like_token,
    parse,
)
from watchword.tokens.mint import new_token, token_hash

bodies = st.text(alphabet=BASE62, min_size=BODY_LENGTH, max_size=BODY_LENGTH)
kinds = st.sampled_from(list(TokenKind))


def test_base62_known_values_are_padded_and_exact() -> None:
    assert base62(0, 6) == "000000"
    assert base62(61, 2) == "0z"
    assert base62(62, 2) == "10"
    assert base62(2**32 - 1, 6) == "4gfFC3"


@given(st.integers(min_value=0, max_value=62**4 - 1))
def test_base62_decodes_back_to_the_number(number: int) -> None:
    encoded = base62(number, 4)
    decoded = 0
    for char in encoded:
        decoded = decoded * 62 + BASE62.index(char)
    assert (len(encoded), decoded) == (4, number)


@pytest.mark.parametrize(("number", "width"), [(62, 1), (62**6, 6), (2**64, 10)])
def test_base62_number_too_wide_raises_naming_the_number(number: int, width: int) -> None:
    with pytest.raises(ValueError, match=f"^{number} does not fit in {width} base62 digits$"):
        base62(number, width)


def test_base62_negative_number_raises() -> None:
    with pytest.raises(ValueError, match=r"^base62 encodes non-negative numbers$"):
        base62(-1, 6)


def test_checksum_is_base62_crc32_of_body() -> None:
    body = "A" * BODY_LENGTH
    value = zlib.crc32(body.encode())
    decoded = 0
    for char in checksum(body):
        decoded = decoded * 62 + BASE62.index(char)
    assert decoded == value


@given(kinds, bodies)
def test_compose_then_parse_roundtrips_and_matches_scanner_regex(
    kind: TokenKind, body: str
) -> None:
    token = compose(kind, body)
    assert len(token) == TOKEN_LENGTH == 40
    assert token.startswith(f"ww{kind.value}_")
    assert parse(token).kind is kind and parse(token).body == body
    assert re.fullmatch(SCANNER_REGEX, token)
    assert re.search(SCANNER_REGEX, f"leaked: {token}.")
    assert looks_like_token(token)
    assert not looks_like_token(f" {token}")
    assert not looks_like_token(f"{token}0")


@given(kinds, bodies, st.integers(min_value=4, max_value=39), st.sampled_from(BASE62))
def test_parse_single_character_change_is_malformed(
    kind: TokenKind, body: str, position: int, char: str
) -> None:
    token = compose(kind, body)
    changed = token[:position] + char + token[position + 1 :]
    if changed == token:
        return
    # CRC32 detects every single-character change in the body; a changed checksum
    # character cannot match the body's checksum either.
    with pytest.raises(TokenMalformed):
        parse(changed)


@given(kinds, bodies, st.integers(min_value=0, max_value=39))
def test_parse_truncated_token_is_malformed(kind: TokenKind, body: str, length: int) -> None:
    with pytest.raises(TokenMalformed):
        parse(compose(kind, body)[:length])


@pytest.mark.parametrize(
    "value",
    ["", "wwb_" + "a" * 36, "wwx_" + "a" * 36, "ghp_" + "a" * 36, "wwp-" + "a" * 36, " " * 40],
)
def test_parse_foreign_shapes_are_malformed_with_one_generic_detail(value: str) -> None:
    with pytest.raises(TokenMalformed) as info:
        parse(value)
    assert info.value.code == "token_malformed"
    assert info.value.detail == "the credential is not a well-formed watchword token"
    assert not looks_like_token(value)


def test_new_token_is_well_formed_random_and_hashed_without_plaintext() -> None:
    tokens = {new_token(TokenKind.INTEGRATION).reveal() for _ in range(200)}
    assert len(tokens) == 200
    assert all(parse(t).kind is TokenKind.INTEGRATION for t in tokens)
    secret = new_token(TokenKind.PERSONAL)
    digest = token_hash(secret)
    assert len(digest) == 64 and secret.reveal() not in digest
    assert display_prefix(secret.reveal()) == secret.reveal()[:8]
    assert secret.reveal() not in repr(secret)


def test_compose_refuses_a_short_or_foreign_body() -> None:
    with pytest.raises(ValueError, match="30 base62"):
        compose(TokenKind.PERSONAL, "abc")
    with pytest.raises(ValueError, match="30 base62"):
        compose(TokenKind.PERSONAL, "_" * BODY_LENGTH)


def test_token_kind_labels_roundtrip() -> None:
    # the labels are what the API and the CLI show
    assert [(k.value, k.label) for k in TokenKind] == [
        ("p", "personal"),
        ("s", "service_account"),
        ("i", "integration"),
    ]
    for kind in TokenKind:
        assert TokenKind.from_label(kind.label) is kind
    with pytest.raises(ValueError, match="unknown token kind"):
        TokenKind.from_label("robot")
