"""Subject from claims: who is asking, read from verified userinfo or token claims.

Pure: no I/O, no clock. Rules:

- The subject is the pair (issuer, ``sub``). The issuer is the configured issuer record's
  URL, matched exactly; a claims ``iss`` that differs is refused. The same ``sub`` from
  another issuer is another subject.
- The namespaced claim (its name is per issuer, default ``settings.rbac.authz_claim``) is
  ``{"acctype": "user" | "service" | "system", "orgIds": [...]}``; every part is optional.
  A missing claim or ``acctype`` means a user.
- ``orgIds`` are honoured only when the issuer is trusted for membership
  (``membership_from_claims``); otherwise :attr:`Identity.claimed_org_ids` is ``None`` and
  membership is resolved locally (groups, service account records).
- On watchword's own issuer a subject ``sa:<id>`` is a service account, whatever the claim
  says: watchword minted that id.
- A malformed claim raises :class:`~watchword.rbac.errors.MalformedClaim` whose pointer
  (RFC 6901, into the claims object) names the bad part.
- :func:`claims_digest` hashes only what this module reads, so cache keys do not change
  with ``iat``/``exp``/``jti``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from watchword.authz.model import AccountType
from watchword.principal import SERVICE_ACCOUNT_PREFIX
from watchword.rbac.errors import MalformedClaim

__all__ = [
    "SERVICE_ACCOUNT_PREFIX",
    "Identity",
    "IssuerTrust",
    "claims_digest",
    "identity_from_claims",
    "json_pointer",
    "service_account_subject",
]


# Rules: the acctype strings of the claim, and the account type each one means.
_ACCOUNT_TYPES: Mapping[str, AccountType] = {t.value: t for t in AccountType}


@dataclass(frozen=True, slots=True)
class IssuerTrust:
    """What watchword needs to know about an issuer to read its claims."""

    url: str
    authz_claim: str
    membership_from_claims: bool = False
    groups_claim: str | None = None
    subject_claim: str = "sub"
    local: bool = False


@dataclass(frozen=True, slots=True)
class Identity:
    """A subject read from claims. ``claimed_org_ids`` is ``None`` when membership is local."""

    issuer: str
    id: str
    account_type: AccountType = AccountType.USER
    claimed_org_ids: frozenset[str] | None = None
    idp_groups: frozenset[str] = frozenset()

    @property
    def pair(self) -> tuple[str, str]:
        return (self.issuer, self.id)


def service_account_subject(issuer_url: str, service_account_id: str) -> tuple[str, str]:
    """The (issuer, subject) of a local service account."""
    return (issuer_url, SERVICE_ACCOUNT_PREFIX + service_account_id)


def json_pointer(*parts: str | int) -> str:
    """An RFC 6901 pointer; claim names such as ``https://x/authz`` are escaped."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _string_list(value: object, *pointer: str | int) -> frozenset[str]:
    if not isinstance(value, list):
        raise MalformedClaim("must be a list of strings", pointer=json_pointer(*pointer))
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise MalformedClaim("must be a non-empty string", pointer=json_pointer(*pointer, i))
    return frozenset(value)


def identity_from_claims(
    claims: Mapping[str, object], issuer: IssuerTrust, *, subject: str | None = None
) -> Identity:
    """Read the identity in ``claims`` (already verified) issued by ``issuer``.

    ``subject`` is the authenticated subject when it is known apart from the claims (an API
    token's principal); a ``sub`` in the claims must then agree with it.
    """
    iss = claims.get("iss")
    if iss is not None and iss != issuer.url:
        raise MalformedClaim(
            "the claims were issued by another issuer than the one given", pointer="/iss"
        )
    claimed_sub = claims.get(issuer.subject_claim)
    if claimed_sub is not None and (not isinstance(claimed_sub, str) or not claimed_sub):
        raise MalformedClaim(
            "must be a non-empty string", pointer=json_pointer(issuer.subject_claim)
        )
    if subject is None:
        if claimed_sub is None:
            raise MalformedClaim(
                "the subject is missing", pointer=json_pointer(issuer.subject_claim)
            )
        subject = claimed_sub
    elif claimed_sub is not None and claimed_sub != subject:
        raise MalformedClaim(
            "does not match the authenticated subject", pointer=json_pointer(issuer.subject_claim)
        )

    account_type = AccountType.USER
    org_ids: frozenset[str] | None = None
    raw = claims.get(issuer.authz_claim)
    if raw is not None:
        if not isinstance(raw, Mapping):
            raise MalformedClaim("must be an object", pointer=json_pointer(issuer.authz_claim))
        acctype = raw.get("acctype")
        if acctype is not None:
            found = _ACCOUNT_TYPES.get(acctype) if isinstance(acctype, str) else None
            if found is None:
                raise MalformedClaim(
                    "must be one of user, service, system",
                    pointer=json_pointer(issuer.authz_claim, "acctype"),
                )
            account_type = found
        if "orgIds" in raw:
            claimed = _string_list(raw["orgIds"], issuer.authz_claim, "orgIds")
            if issuer.membership_from_claims:
                org_ids = claimed

    idp_groups: frozenset[str] = frozenset()
    if issuer.groups_claim is not None and issuer.groups_claim in claims:
        idp_groups = _string_list(claims[issuer.groups_claim], issuer.groups_claim)

    if issuer.local and subject.startswith(SERVICE_ACCOUNT_PREFIX):
        account_type = AccountType.SERVICE
    return Identity(
        issuer=issuer.url,
        id=subject,
        account_type=account_type,
        claimed_org_ids=org_ids,
        idp_groups=idp_groups,
    )


def claims_digest(claims: Mapping[str, object], issuer: IssuerTrust) -> str:
    """SHA-256 over the claims this module reads (canonical JSON), for cache keys."""
    read = {
        name: claims.get(name)
        for name in ("iss", issuer.subject_claim, issuer.authz_claim, issuer.groups_claim or "")
        if name in claims
    }
    canonical = json.dumps(read, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
