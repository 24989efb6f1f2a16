"""The claims rules of bearer JWTs and the issuer settings, as values (no HTTP, no keys:
signatures are checked by ``watchword.federation.jwt``, tested in ``tests/federation`` and
end to end in ``test_fastapi.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchword.errors import AuthenticationError, ConfigurationError, TokenExpired
from watchword.integrations import BearerIssuer
from watchword.integrations._bearer import check_claims, looks_like_jwt

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
ISSUER = BearerIssuer(issuer="https://login.example.com", audience="notes-api")


def claims(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "iss": ISSUER.issuer,
        "aud": ["other-api", "notes-api"],
        "sub": "alice",
        "exp": T + 300,
        "iat": T - 10,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_valid_claims_give_the_issuer_subject_and_claims() -> None:
    verified = check_claims(claims(), ISSUER, now=NOW)
    assert (verified.issuer, verified.subject) == (ISSUER.issuer, "alice")
    assert verified.claims["aud"] == ["other-api", "notes-api"]
    assert "alice" not in repr(verified.claims.keys()) and "claims" not in repr(verified)


def test_expiry_is_allowed_the_leeway_and_not_a_second_more() -> None:
    leeway = int(ISSUER.leeway.total_seconds())
    check_claims(claims(exp=T - leeway + 1), ISSUER, now=NOW)
    with pytest.raises(TokenExpired):
        check_claims(claims(exp=T - leeway), ISSUER, now=NOW)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "other-api"}, "audience"),
        ({"iss": "https://login.example.com/"}, "issuer"),
        ({"exp": None}, "exp"),
        ({"nbf": T + 3600}, "nbf"),
        ({"iat": T + 3600}, "iat"),
        ({"sub": None}, "subject"),
        ({"sub": ""}, "subject"),
        ({"exp": "tomorrow"}, "exp"),
    ],
)
def test_each_broken_claim_is_refused_with_its_reason(
    changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(AuthenticationError) as refused:
        check_claims(claims(**changes), ISSUER, now=NOW)
    assert reason in refused.value.detail
    assert type(refused.value) is AuthenticationError  # 401 unauthenticated, not "expired"


def test_a_configured_subject_claim_names_the_subject() -> None:
    issuer = BearerIssuer(issuer=ISSUER.issuer, audience="notes-api", subject_claim="oid")
    assert check_claims(claims(oid="0f-42"), issuer, now=NOW).subject == "0f-42"


@pytest.mark.parametrize(
    "settings",
    [
        {"algorithms": ("HS256",)},
        {"algorithms": ("none",)},
        {"algorithms": ()},
        {"leeway": timedelta(minutes=6)},
        {"leeway": timedelta(seconds=-1)},
        {"audience": ""},
        {"issuer": "not a url"},
    ],
)
def test_unsafe_or_incomplete_issuer_settings_are_refused(settings: dict[str, object]) -> None:
    given: dict[str, object] = {"issuer": ISSUER.issuer, "audience": "notes-api", **settings}
    with pytest.raises(ConfigurationError):
        BearerIssuer(**given)  # type: ignore[arg-type]


def test_an_issuer_is_named_by_its_host_unless_named() -> None:
    assert ISSUER.name == "login.example.com"
    named = BearerIssuer(issuer=ISSUER.issuer, audience="a", name="corp")
    assert named.name == "corp"


def test_only_three_part_values_are_taken_for_jwts() -> None:
    assert looks_like_jwt("a.b.c")
    assert not looks_like_jwt("wwp_" + "A" * 36)
    assert not looks_like_jwt("a.b")
