from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchword.authz.model import AccountType
from watchword.rbac.claims import (
    IssuerTrust,
    claims_digest,
    identity_from_claims,
    json_pointer,
    service_account_subject,
)
from watchword.rbac.errors import MalformedClaim

CLAIM = "https://watchword.dev/authz"
TRUSTED = IssuerTrust("https://idp.example", CLAIM, membership_from_claims=True)
UNTRUSTED = IssuerTrust("https://other.example", CLAIM, membership_from_claims=False)
LOCAL = IssuerTrust("http://127.0.0.1:8000", CLAIM, local=True)


def test_identity_missing_claim_is_user_with_local_membership() -> None:
    ident = identity_from_claims({"sub": "alice"}, TRUSTED)
    assert ident.account_type is AccountType.USER
    assert ident.claimed_org_ids is None
    assert ident.pair == ("https://idp.example", "alice")


def test_identity_trusted_issuer_org_ids_are_honoured() -> None:
    claims = {"sub": "alice", CLAIM: {"acctype": "user", "orgIds": ["o1", "o2"]}}
    assert identity_from_claims(claims, TRUSTED).claimed_org_ids == frozenset({"o1", "o2"})


def test_identity_untrusted_issuer_org_ids_are_ignored() -> None:
    claims = {"sub": "alice", CLAIM: {"orgIds": ["o1"]}}
    assert identity_from_claims(claims, UNTRUSTED).claimed_org_ids is None


AUTHZ = "/https:~1~1watchword.dev~1authz"


@pytest.mark.parametrize(
    ("claims", "pointer", "detail"),
    [
        ({"sub": "a", CLAIM: "user"}, AUTHZ, "must be an object"),
        (
            {"sub": "a", CLAIM: {"acctype": "robot"}},
            f"{AUTHZ}/acctype",
            "must be one of user, service, system",
        ),
        (
            {"sub": "a", CLAIM: {"acctype": 1}},
            f"{AUTHZ}/acctype",
            "must be one of user, service, system",
        ),
        (
            {"sub": "a", CLAIM: {"acctype": ["user"]}},
            f"{AUTHZ}/acctype",
            "must be one of user, service, system",
        ),
        ({"sub": "a", CLAIM: {"orgIds": "o1"}}, f"{AUTHZ}/orgIds", "must be a list of strings"),
        (
            {"sub": "a", CLAIM: {"orgIds": ["o1", 3]}},
            f"{AUTHZ}/orgIds/1",
            "must be a non-empty string",
        ),
        ({"sub": "a", CLAIM: {"orgIds": [""]}}, f"{AUTHZ}/orgIds/0", "must be a non-empty string"),
        ({"sub": ""}, "/sub", "must be a non-empty string"),
        ({"sub": 7}, "/sub", "must be a non-empty string"),
        ({}, "/sub", "the subject is missing"),
        (
            {"sub": "a", "iss": "https://evil.example"},
            "/iss",
            "the claims were issued by another issuer than the one given",
        ),
    ],
)
def test_identity_malformed_claims_raise_with_pointer(
    claims: dict[str, object], pointer: str, detail: str
) -> None:
    with pytest.raises(MalformedClaim) as info:
        identity_from_claims(claims, TRUSTED)
    assert info.value.pointer == pointer
    assert info.value.detail == detail
    assert info.value.code == "malformed_claim"


def test_identity_malformed_groups_claim_points_at_it() -> None:
    issuer = IssuerTrust("https://idp.example", CLAIM, groups_claim="groups")
    with pytest.raises(MalformedClaim) as info:
        identity_from_claims({"sub": "a", "groups": "eng"}, issuer)
    assert (info.value.pointer, info.value.detail) == ("/groups", "must be a list of strings")


def test_identity_subject_disagreeing_with_principal_is_refused() -> None:
    with pytest.raises(MalformedClaim) as info:
        identity_from_claims({"sub": "bob"}, TRUSTED, subject="alice")
    assert (info.value.pointer, info.value.detail) == (
        "/sub",
        "does not match the authenticated subject",
    )


def test_identity_local_sa_subject_is_a_service_account_whatever_the_claim() -> None:
    ident = identity_from_claims({CLAIM: {"acctype": "user"}}, LOCAL, subject="sa:svc_1")
    assert ident.account_type is AccountType.SERVICE
    # On a foreign issuer the prefix means nothing.
    assert identity_from_claims({"sub": "sa:x"}, TRUSTED).account_type is AccountType.USER


def test_identity_groups_claim_read_only_when_configured() -> None:
    issuer = IssuerTrust("https://idp.example", CLAIM, groups_claim="groups")
    assert identity_from_claims({"sub": "a", "groups": ["eng"]}, issuer).idp_groups == {"eng"}
    assert identity_from_claims({"sub": "a", "groups": ["eng"]}, TRUSTED).idp_groups == frozenset()


def test_claims_digest_ignores_unread_claims_and_sees_read_ones() -> None:
    base = {"sub": "a", CLAIM: {"orgIds": ["o1"]}}
    assert claims_digest({**base, "iat": 1, "exp": 2}, TRUSTED) == claims_digest(base, TRUSTED)
    assert claims_digest({**base, CLAIM: {"orgIds": ["o2"]}}, TRUSTED) != claims_digest(
        base, TRUSTED
    )


@pytest.mark.parametrize("acctype", list(AccountType))
def test_identity_acctype_claim_gives_that_account_type(acctype: AccountType) -> None:
    claims = {"sub": "robot", CLAIM: {"acctype": acctype.value}}
    assert identity_from_claims(claims, TRUSTED).account_type is acctype
    assert identity_from_claims(claims, UNTRUSTED).account_type is acctype


def test_identity_claims_of_configured_names_are_read() -> None:
    issuer = IssuerTrust(
        "https://idp.example", "roles", True, groups_claim="teams", subject_claim="oid"
    )
    claims = {"oid": "u-1", "sub": "other", "roles": {"orgIds": ["o1"]}, "teams": ["eng"]}
    ident = identity_from_claims(claims, issuer)
    assert ident.id == "u-1"
    assert ident.claimed_org_ids == frozenset({"o1"})
    assert ident.idp_groups == {"eng"}
    assert identity_from_claims({"oid": "u-1"}, issuer, subject="u-1").id == "u-1"


def test_identity_claimed_orgs_without_acctype_stay_a_user() -> None:
    ident = identity_from_claims({"sub": "a", CLAIM: {"orgIds": []}}, TRUSTED)
    assert (ident.account_type, ident.claimed_org_ids) == (AccountType.USER, frozenset())


def test_claims_digest_changes_with_idp_groups() -> None:
    issuer = IssuerTrust("https://idp.example", CLAIM, groups_claim="groups")
    base = {"sub": "a", "groups": ["eng"]}
    digest = claims_digest(base, issuer)
    assert claims_digest({**base, "groups": ["eng", "ops"]}, issuer) != digest
    assert claims_digest({**base, "groups": []}, issuer) != digest
    assert claims_digest({"sub": "a"}, issuer) != digest
    assert claims_digest({**base, "iat": 7}, issuer) == digest


def test_claims_digest_changes_with_subject_and_issuer_claims() -> None:
    base = {"sub": "a", "iss": TRUSTED.url}
    digest = claims_digest(base, TRUSTED)
    assert claims_digest({**base, "sub": "b"}, TRUSTED) != digest
    # a claims set naming another issuer is refused; it must not hit the cached identity
    assert claims_digest({**base, "iss": "https://evil.example"}, TRUSTED) != digest


def test_claims_digest_is_sha256_of_sorted_compact_json() -> None:
    claims = {"sub": "a", CLAIM: {"orgIds": ["o1"], "acctype": "user"}, "exp": 9}
    canonical = '{"https://watchword.dev/authz":{"acctype":"user","orgIds":["o1"]},"sub":"a"}'
    assert claims_digest(claims, TRUSTED) == hashlib.sha256(canonical.encode()).hexdigest()
    # the same claims in another order are the same identity
    reordered = {CLAIM: {"acctype": "user", "orgIds": ["o1"]}, "sub": "a"}
    assert claims_digest(reordered, TRUSTED) == claims_digest(claims, TRUSTED)


def test_claims_digest_hashes_a_non_json_value_by_its_text() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    canonical = '{"sub":"2026-01-01 00:00:00+00:00"}'
    expected = hashlib.sha256(canonical.encode()).hexdigest()
    assert claims_digest({"sub": when}, TRUSTED) == expected


def test_json_pointer_escapes_tilde_before_slash() -> None:
    assert json_pointer("a~1/b", 0) == "/a~01~1b/0"


@given(st.lists(st.text(), min_size=1, max_size=4))
def test_json_pointer_round_trips_any_claim_name(parts: list[str]) -> None:
    pointer = json_pointer(*parts)
    decoded = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    assert decoded == parts


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
authz_values = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "acctype": st.one_of(st.sampled_from(["user", "service", "system"]), json_values),
            "orgIds": st.one_of(st.lists(st.text(max_size=4), max_size=3), json_values),
        },
    ),
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "sub": st.one_of(st.text(max_size=6), json_values),
            "iss": st.sampled_from([TRUSTED.url, "https://other"]),
            CLAIM: authz_values,
            "groups": json_values,
        },
    )
)
def test_identity_any_claims_parse_or_raise_malformed_claim(claims: dict[str, object]) -> None:
    issuer = IssuerTrust(TRUSTED.url, CLAIM, membership_from_claims=True, groups_claim="groups")
    try:
        ident = identity_from_claims(claims, issuer)
    except MalformedClaim as exc:
        pointer = exc.pointer
        ident = None
    if ident is None:
        assert pointer is not None and pointer.startswith("/")
        return
    assert ident.issuer == TRUSTED.url and ident.id == claims["sub"]
    raw = claims.get(CLAIM)
    if ident.claimed_org_ids is not None:
        assert isinstance(raw, dict) and frozenset(raw["orgIds"]) == ident.claimed_org_ids


def test_service_account_subject_is_the_issuer_and_prefixed_id() -> None:
    assert service_account_subject("https://ww.example", "svc_1") == (
        "https://ww.example",
        "sa:svc_1",
    )
