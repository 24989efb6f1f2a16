"""The token rules (:mod:`watchword.tokens.access`) without HTTP: callers as values, the
organization grants of the policy engine as a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchword.errors import InvalidInput, NotFound, PermissionDenied
from watchword.principal import Principal, PrincipalKind
from watchword.tokens.access import (
    Caller,
    OrgGrant,
    TokenRequest,
    check_rotate,
    check_visible,
    list_owner,
    new_token,
)
from watchword.tokens.format import TokenKind
from watchword.tokens.mint import mint
from watchword.tokens.model import Owner, TokenRecord
from watchword.tokens.scope import Permission

ISS = "https://idp.example"
LOCAL = "http://127.0.0.1:8000"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
ALICE = Owner(ISS, "alice")
BOB = Owner(ISS, "bob")


def _record(
    owner: Owner,
    *,
    scopes: frozenset[str] = frozenset(),
    permission: Permission = Permission.READ_WRITE,
    org: str | None = None,
    kind: TokenKind = TokenKind.PERSONAL,
    expires_at: datetime | None = None,
) -> TokenRecord:
    return mint(
        kind,
        name="t",
        owner=owner,
        organization_id=org,
        scopes=scopes,
        permission=permission,
        now=NOW,
        expires_at=expires_at,
    )[1]


def _token_caller(record: TokenRecord) -> Caller:
    principal = Principal(
        kind=PrincipalKind.API_TOKEN,
        id=record.id,
        issuer=record.owner.issuer,
        subject=record.owner.subject,
        scopes=record.scopes,
        organization_id=record.organization_id,
    )
    return Caller(principal, record)


def _person(owner: Owner) -> Caller:
    """A caller with no token record of its own (a signed-in session)."""
    return Caller(
        Principal(kind=PrincipalKind.SESSION, id="ses", issuer=owner.issuer, subject=owner.subject)
    )


def _grants(table: dict[tuple[str, str], bool]) -> tuple[OrgGrant, list[tuple[str, str, str]]]:
    asked: list[tuple[str, str, str]] = []

    async def grant(action: str, org: str, token_id: str) -> bool:
        asked.append((action, org, token_id))
        return table.get((action, org), False)

    return grant, asked


NO_GRANTS, _ = _grants({})


def _request(**fields: object) -> TokenRequest:
    values: dict[str, object] = {
        "kind": TokenKind.PERSONAL,
        "name": "child",
        "scopes": frozenset(),
        "permission": Permission.READ_ONLY,
    }
    values.update(fields)
    return TokenRequest(**values)  # type: ignore[arg-type]


async def _never(_sa: str, _org: str) -> None:
    raise AssertionError("no service account lookup expected")


async def test_visible_read_only_token_may_read_but_not_revoke_its_owners_tokens() -> None:
    mine = _record(ALICE, permission=Permission.READ_ONLY)
    sibling = _record(ALICE)
    await check_visible(_token_caller(mine), sibling, "read", NO_GRANTS)
    with pytest.raises(PermissionDenied, match="read-only"):
        await check_visible(_token_caller(mine), sibling, "delete", NO_GRANTS)


async def test_visible_caller_without_a_token_record_may_revoke_its_own_tokens() -> None:
    await check_visible(_person(ALICE), _record(ALICE), "delete", NO_GRANTS)


async def test_visible_other_owners_token_is_not_found_without_a_grant() -> None:
    with pytest.raises(NotFound):
        await check_visible(_person(ALICE), _record(BOB, org="acme"), "read", NO_GRANTS)


async def test_visible_org_reader_gets_403_for_delete_and_the_grant_is_asked_per_token() -> None:
    target = _record(BOB, org="acme")
    grant, asked = _grants({("read", "acme"): True})
    await check_visible(_person(ALICE), target, "read", grant)
    with pytest.raises(PermissionDenied):
        await check_visible(_person(ALICE), target, "delete", grant)
    assert ("delete", "acme", target.id) in asked


async def test_visible_principal_without_subject_is_refused() -> None:
    nobody = Caller(Principal(kind=PrincipalKind.API_TOKEN, id="x"))
    with pytest.raises(PermissionDenied, match="subject"):
        await check_visible(nobody, _record(BOB), "read", NO_GRANTS)


async def test_new_token_within_scopes_is_capped_at_the_callers_expiry() -> None:
    ends = NOW + timedelta(days=1)
    mine = _record(ALICE, scopes=frozenset({"projects:*"}), expires_at=ends)
    spec = await new_token(
        _token_caller(mine),
        _request(scopes=frozenset({"projects:read"}), expires_at=NOW + timedelta(days=30)),
        grant=NO_GRANTS,
        service_account_exists=_never,
        local_issuer=LOCAL,
    )
    assert spec.owner == ALICE
    assert spec.expires_at == ends
    assert spec.organization_id is None


async def test_new_token_broader_than_the_caller_is_refused() -> None:
    mine = _record(ALICE, scopes=frozenset({"projects:read"}))
    with pytest.raises(PermissionDenied, match="within"):
        await new_token(
            _token_caller(mine),
            _request(scopes=frozenset({"projects:delete"})),
            grant=NO_GRANTS,
            service_account_exists=_never,
            local_issuer=LOCAL,
        )


async def test_new_token_for_another_owner_or_kind_or_org_is_refused() -> None:
    caller = _token_caller(_record(ALICE, org="acme"))
    for request, reason in (
        (_request(owner_subject="bob"), "own owner"),
        (_request(kind=TokenKind.INTEGRATION), "personal"),
    ):
        with pytest.raises(PermissionDenied, match=reason):
            await new_token(
                caller, request, grant=NO_GRANTS, service_account_exists=_never, local_issuer=LOCAL
            )


async def test_new_token_read_only_caller_cannot_create() -> None:
    caller = _token_caller(_record(ALICE, permission=Permission.READ_ONLY))
    with pytest.raises(PermissionDenied, match="read-only"):
        await new_token(
            caller, _request(), grant=NO_GRANTS, service_account_exists=_never, local_issuer=LOCAL
        )


async def test_new_service_account_token_needs_the_org_grant_and_the_orgs_account() -> None:
    looked_up: list[tuple[str, str]] = []

    async def exists(sa: str, org: str) -> None:
        looked_up.append((sa, org))

    request = _request(
        kind=TokenKind.SERVICE_ACCOUNT, owner_subject="sa:deployer", organization_id="acme"
    )
    grant, _ = _grants({("create", "acme"): True})
    spec = await new_token(
        _person(ALICE), request, grant=grant, service_account_exists=exists, local_issuer=LOCAL
    )
    assert spec.owner == Owner(LOCAL, "sa:deployer")
    assert looked_up == [("deployer", "acme")]
    with pytest.raises(NotFound):
        await new_token(
            _person(ALICE),
            request,
            grant=NO_GRANTS,
            service_account_exists=exists,
            local_issuer=LOCAL,
        )
    with pytest.raises(InvalidInput):
        await new_token(
            _person(ALICE),
            _request(
                kind=TokenKind.SERVICE_ACCOUNT, owner_subject="deployer", organization_id="acme"
            ),
            grant=grant,
            service_account_exists=exists,
            local_issuer=LOCAL,
        )


async def test_new_token_superuser_needs_an_owner_and_defaults_the_issuer() -> None:
    admin = Caller(Principal(kind=PrincipalKind.ADMIN_KEY, id="adm", superuser=True))
    with pytest.raises(InvalidInput):
        await new_token(
            admin, _request(), grant=NO_GRANTS, service_account_exists=_never, local_issuer=LOCAL
        )
    spec = await new_token(
        admin,
        _request(owner_subject="carol"),
        grant=NO_GRANTS,
        service_account_exists=_never,
        local_issuer=LOCAL,
    )
    assert spec.owner == Owner(LOCAL, "carol")


async def test_rotate_narrow_token_cannot_rotate_a_broader_sibling() -> None:
    narrow = _record(ALICE, scopes=frozenset({"projects:read"}))
    broad = _record(ALICE, scopes=frozenset({"projects:*"}))
    with pytest.raises(PermissionDenied, match="within"):
        await check_rotate(_token_caller(narrow), broad, NO_GRANTS)
    await check_rotate(_token_caller(broad), narrow, NO_GRANTS)


async def test_list_owner_by_caller() -> None:
    admin = Caller(Principal(kind=PrincipalKind.ADMIN_KEY, id="adm", superuser=True))
    args = {"owner_issuer": None, "organization_id": None, "local_issuer": LOCAL}
    assert await list_owner(admin, owner_subject=None, grant=NO_GRANTS, **args) is None  # type: ignore[arg-type]
    assert await list_owner(admin, owner_subject="x", grant=NO_GRANTS, **args) == Owner(LOCAL, "x")  # type: ignore[arg-type]
    assert await list_owner(_person(ALICE), owner_subject="x", grant=NO_GRANTS, **args) == ALICE  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        await list_owner(
            _person(ALICE),
            owner_subject=None,
            owner_issuer=None,
            organization_id="acme",
            grant=NO_GRANTS,
            local_issuer=LOCAL,
        )
    grant, _ = _grants({("read", "acme"): True})
    everyone = await list_owner(
        _person(ALICE),
        owner_subject=None,
        owner_issuer=None,
        organization_id="acme",
        grant=grant,
        local_issuer=LOCAL,
    )
    assert everyone is None


ADMIN = Caller(Principal(kind=PrincipalKind.ADMIN_KEY, id="adm", superuser=True))


async def test_rotate_another_persons_personal_token_is_refused_to_everyone_else() -> None:
    # Labelled with an organization as rows made before labels were refused on personal tokens.
    theirs = _record(BOB, org="acme")
    org_admin, _ = _grants({(a, "acme"): True for a in ("read", "update", "delete")})
    for caller, grant in ((ADMIN, NO_GRANTS), (_person(ALICE), org_admin)):
        with pytest.raises(PermissionDenied, match="only its owner"):
            await check_rotate(caller, theirs, grant)
        await check_visible(caller, theirs, "delete", grant)  # revoking stays allowed
    with pytest.raises(NotFound):  # and a stranger learns nothing
        await check_rotate(_person(ALICE), theirs, NO_GRANTS)
    await check_rotate(_person(BOB), theirs, NO_GRANTS)  # the owner may


async def test_rotate_by_an_org_admin_is_bounded_by_the_admins_own_token() -> None:
    sa_token = _record(
        Owner(LOCAL, "sa:deploy"),
        scopes=frozenset({"*:*"}),
        org="acme",
        kind=TokenKind.SERVICE_ACCOUNT,
    )
    grant, _ = _grants({("update", "acme"): True, ("read", "acme"): True})
    narrow_admin = _token_caller(_record(ALICE, scopes=frozenset({"watchword:tokens:update"})))
    with pytest.raises(PermissionDenied, match="within"):
        await check_rotate(narrow_admin, sa_token, grant)
    broad_admin = _token_caller(_record(ALICE, scopes=frozenset({"*:*"})))
    await check_rotate(broad_admin, sa_token, grant)
    # a session has no token scopes to bound it: the engine's grant in the organization decides
    await check_rotate(_person(ALICE), sa_token, grant)
    other_org = Caller(
        Principal(
            kind=PrincipalKind.API_TOKEN,
            id="x",
            issuer=ALICE.issuer,
            subject=ALICE.subject,
            organization_id="globex",
        ),
        _record(ALICE, scopes=frozenset({"*:*"}), org="globex", kind=TokenKind.INTEGRATION),
    )
    with pytest.raises(PermissionDenied, match="own organization"):
        await check_rotate(other_org, sa_token, grant)


async def test_new_service_account_token_is_bounded_by_the_admins_own_token() -> None:
    async def exists(_sa: str, _org: str) -> None:
        return None

    grant, _ = _grants({("create", "acme"): True})
    request = _request(
        kind=TokenKind.SERVICE_ACCOUNT,
        owner_subject="sa:deployer",
        organization_id="acme",
        scopes=frozenset({"compute:clusters:*"}),
        permission=Permission.READ_WRITE,
    )
    narrow = _token_caller(_record(ALICE, scopes=frozenset({"watchword:tokens:*"})))
    with pytest.raises(PermissionDenied, match="within"):
        await new_token(
            narrow, request, grant=grant, service_account_exists=exists, local_issuer=LOCAL
        )
    wide = _token_caller(
        _record(ALICE, scopes=frozenset({"watchword:tokens:*", "compute:clusters:*"}))
    )
    spec = await new_token(
        wide, request, grant=grant, service_account_exists=exists, local_issuer=LOCAL
    )
    assert spec.scopes == frozenset({"compute:clusters:*"})


async def test_new_personal_token_never_carries_an_organization() -> None:
    for caller in (ADMIN, _token_caller(_record(ALICE))):
        with pytest.raises(InvalidInput) as refused:
            await new_token(
                caller,
                _request(owner_subject="alice", organization_id="acme"),
                grant=NO_GRANTS,
                service_account_exists=_never,
                local_issuer=LOCAL,
            )
        assert refused.value.pointer == "/organization_id"


async def test_rotate_by_a_token_caps_the_successor_at_the_callers_expiry() -> None:
    ends = NOW + timedelta(hours=1)
    mine = _token_caller(_record(ALICE, scopes=frozenset({"*:*"}), expires_at=ends))
    forever = _record(ALICE, scopes=frozenset({"*:*"}))
    assert await check_rotate(mine, forever, NO_GRANTS) == ends
    assert await check_rotate(_person(ALICE), forever, NO_GRANTS) is None
    service = _record(Owner(LOCAL, "sa:x"), org="acme", kind=TokenKind.SERVICE_ACCOUNT)
    assert await check_rotate(ADMIN, service, NO_GRANTS) is None


async def test_rotate_by_an_org_admin_is_only_for_its_service_accounts_tokens() -> None:
    grant, _ = _grants({("update", "acme"): True, ("read", "acme"): True})
    persons = _record(BOB, org="acme", kind=TokenKind.INTEGRATION)
    with pytest.raises(PermissionDenied, match="service accounts"):
        await check_rotate(_person(ALICE), persons, grant)
    service = _record(Owner(LOCAL, "sa:deploy"), org="acme", kind=TokenKind.SERVICE_ACCOUNT)
    await check_rotate(_person(ALICE), service, grant)
