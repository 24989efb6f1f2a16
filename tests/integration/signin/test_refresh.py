"""Sessions kept fresh against the real provider (refresh-token rotation on: reusing a rotated
refresh token revokes the whole grant). watchword's clock is a FakeClock started at the real
time, so "inside the grace period" is a step of the clock, not a wait; the provider counts
every token grant in its event log."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from tests.integration.signin.conftest import SigninApp, SigninFactory
from tests.oidc.plugin import AUTHZ_CLAIM, OidcProvider, OidcProviderFactory

from watchword.clock import FakeClock, utc
from watchword.sessions.refresh import Outcome
from watchword.sessions.sealing import SealedColumn
from watchword.sessions.tables import sessions

EXPOSE = {"expose_access_token": True}
FAST = {"grace": "30s", "cool_off": "2s"}


def refresh_grants(provider: OidcProvider) -> int:
    return sum(
        1
        for e in provider.events()
        if e.get("event") == "grant.success" and e.get("grant_type") == "refresh_token"
    )


def reuse_errors(provider: OidcProvider) -> list[dict[str, Any]]:
    return [e for e in provider.events() if e.get("event") == "grant.error"]


async def _session(made: SigninApp) -> dict[str, Any]:
    async with made.services.runtime.engine.connect() as conn:
        return dict((await conn.execute(select(sessions))).one()._mapping)


async def _into_grace(made: SigninApp) -> None:
    row = await _session(made)
    assert isinstance(made.clock, FakeClock)
    expires = row["access_expires_at"]
    made.clock.set(utc(expires) - timedelta(seconds=10))


async def test_me_token_refreshes_inline_once_however_many_requests_race(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> None:
    provider = oidc_provider_factory(ttl={"AccessToken": 120})
    made = await signin_app(provider, provider_settings=EXPOSE, refresher=FAST)
    assert (await made.sign_in()).status_code == 302
    first = await made.client.get("/v1/me/token")
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"].startswith("no-store")
    token_a = first.json()["access_token"]
    assert refresh_grants(provider) == 0  # fresh: no refresh

    await _into_grace(made)
    answers = await asyncio.gather(*(made.client.get("/v1/me/token") for _ in range(8)))
    assert {a.status_code for a in answers} == {200}, [a.json().get("detail") for a in answers]
    tokens = {a.json()["access_token"] for a in answers}
    # Every waiter got the winner's token.
    assert len(tokens) == 1 and token_a not in tokens, (token_a in tokens, refresh_grants(provider))
    assert refresh_grants(provider) == 1 and reuse_errors(provider) == []

    row = await _session(made)
    assert row["intent_fence"] is None and row["refresh_failures"] == 0
    assert row["refreshed_at"] is not None and row["state"] == "active"
    # The new tokens are sealed; the new access token is not in the row in the clear.
    assert next(iter(tokens)).encode() not in row[SealedColumn.ACCESS_TOKEN]

    # Several lifetimes in a row, each refreshed once.
    for round_ in range(3):
        await _into_grace(made)
        again = await made.client.get("/v1/me/token")
        assert again.status_code == 200
        assert refresh_grants(provider) == 2 + round_
    assert reuse_errors(provider) == []


async def test_me_token_needs_the_providers_opt_in_and_a_session(
    oidc_provider: OidcProvider, signin_app: SigninFactory
) -> None:
    made = await signin_app(oidc_provider)
    assert (await made.sign_in()).status_code == 302
    refused = await made.client.get("/v1/me/token")
    assert refused.status_code == 403 and refused.json()["code"] == "upstream_token_not_exposed"
    assert "access_token" not in refused.json() and "token_type" not in refused.json()


async def test_a_grant_revoked_at_the_provider_ends_the_session_at_the_next_refresh(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> None:
    provider = oidc_provider_factory()
    made = await signin_app(provider, provider_settings=EXPOSE, refresher=FAST)
    assert (await made.sign_in()).status_code == 302
    row = await _session(made)
    refresh_token = made.services.sessions.sealer.open(
        row["refresh_token"], session_id=row["id"], column=SealedColumn.REFRESH_TOKEN
    )
    client = provider.clients["watchword-test"]
    async with httpx.AsyncClient() as http:
        revoked = await http.post(
            f"{provider.issuer}/token/revocation",
            data={"token": refresh_token.reveal(), "token_type_hint": "refresh_token"},
            auth=(client.client_id, client.client_secret or ""),
        )
    assert revoked.status_code == 200

    await _into_grace(made)
    result = await made.services.refresher.refresh(row["id"])
    assert result.outcome is Outcome.PERMANENT
    assert result.record is not None and result.record.state == "reauth_required"
    assert "invalid_grant" in (result.record.state_reason or "")
    me = await made.client.get("/v1/me")
    assert me.status_code == 401 and me.json()["code"] == "session_invalid"
    assert "sign in again" in me.json()["detail"]


async def test_the_provider_answering_503_keeps_the_session_and_retries_later(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> None:
    provider, made, row, _ = await _signed_in_and_due(oidc_provider_factory, signin_app)
    provider.stop()  # nothing listens: the request is never delivered
    failed = await made.services.refresher.refresh(row["id"])
    assert failed.outcome is Outcome.TEMPORARY
    assert failed.record is not None and failed.record.state == "active"
    assert failed.record.refresh_failures == 1 and failed.record.last_error
    assert failed.record.refresh_due_at is not None
    assert failed.record.refresh_due_at > made.clock.now()
    # Inside the grace period the current token is still handed out.
    still = await made.client.get("/v1/me/token")
    assert still.status_code == 200

    provider.start()
    assert isinstance(made.clock, FakeClock)
    made.clock.advance(timedelta(seconds=6))  # past the cool-off and the discovery back-off
    retried = await made.services.refresher.refresh(row["id"])
    assert retried.outcome is Outcome.REFRESHED, retried
    assert retried.record is not None and retried.record.refresh_failures == 0
    assert refresh_grants(provider) == 1 and reuse_errors(provider) == []


async def _signed_in_and_due(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> tuple[OidcProvider, SigninApp, dict[str, Any], FakeClock]:
    """A provider, an app signed in through it (FakeClock), its session, inside the grace."""
    provider = oidc_provider_factory()
    made = await signin_app(provider, provider_settings=EXPOSE, refresher=FAST)
    assert (await made.sign_in()).status_code == 302
    row = await _session(made)
    await _into_grace(made)
    assert isinstance(made.clock, FakeClock)
    return provider, made, row, made.clock


def failed_on_purpose(provider: OidcProvider) -> int:
    return sum(1 for e in provider.events() if e.get("event") == "token.failed_on_purpose")


async def test_a_429_with_retry_after_is_a_temporary_failure_that_waits_as_asked(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> None:
    provider, made, row, clock = await _signed_in_and_due(oidc_provider_factory, signin_app)
    provider.fail_token_requests(429, retry_after="120")
    throttled = await made.services.refresher.refresh(row["id"])
    assert throttled.outcome is Outcome.TEMPORARY
    assert failed_on_purpose(provider) == 1
    after = await _session(made)
    assert after["state"] == "active" and after["refresh_failures"] == 1
    asked = clock.now() + timedelta(seconds=120)
    assert abs((utc(after["retry_after"]) - asked).total_seconds()) < 2
    assert utc(after["refresh_due_at"]) >= utc(after["retry_after"])  # not before it asked
    assert "429" in (after["last_error"] or "")

    # Within the Retry-After, neither a background pass nor a request calls again (the
    # token may expire meanwhile: the provider asked for that).
    clock.advance(timedelta(seconds=60))
    again = await made.services.refresher.refresh(row["id"])
    assert again.outcome is Outcome.NOT_DUE and failed_on_purpose(provider) == 1
    await made.services.background.run_pass()
    await made.services.background.drain()
    assert failed_on_purpose(provider) == 1 and refresh_grants(provider) == 0

    provider.fail_token_requests(None)
    clock.advance(timedelta(seconds=61))
    retried = await made.services.refresher.refresh(row["id"])
    assert retried.outcome is Outcome.REFRESHED, retried
    assert refresh_grants(provider) == 1 and reuse_errors(provider) == []
    assert (await _session(made))["retry_after"] is None


async def test_a_503_answer_keeps_the_session_and_is_retried_with_backoff(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> None:
    provider, made, row, clock = await _signed_in_and_due(oidc_provider_factory, signin_app)
    provider.fail_token_requests(503)
    first = await made.services.refresher.refresh(row["id"])
    assert first.outcome is Outcome.TEMPORARY
    due_1 = utc((await _session(made))["refresh_due_at"])
    clock.set(due_1)
    second = await made.services.refresher.refresh(row["id"])
    assert second.outcome is Outcome.TEMPORARY and failed_on_purpose(provider) == 2
    after = await _session(made)
    assert after["state"] == "active" and after["refresh_failures"] == 2
    # Backoff: the second wait is longer than the first (cool-off 2 s at least each).
    assert utc(after["refresh_due_at"]) - clock.now() >= timedelta(seconds=2)
    provider.fail_token_requests(None)
    clock.set(utc(after["refresh_due_at"]))
    third = await made.services.refresher.refresh(row["id"])
    assert third.outcome is Outcome.REFRESHED
    assert refresh_grants(provider) == 1 and reuse_errors(provider) == []


async def test_an_unusable_answer_to_a_refresh_is_never_followed_by_a_second_presentation(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> None:
    provider, made, row, _ = await _signed_in_and_due(oidc_provider_factory, signin_app)
    provider.fail_token_requests(200)  # a 200 without an access token: the token may be spent
    result = await made.services.refresher.refresh(row["id"])
    assert result.outcome is Outcome.INTERRUPTED, result
    assert result.record is not None and result.record.state == "reauth_required"
    assert (result.record.state_reason or "").startswith("refresh_interrupted")
    provider.fail_token_requests(None)
    again = await made.services.refresher.refresh(row["id"], force=True)
    assert again.outcome is Outcome.NOT_DUE or again.outcome is Outcome.INACTIVE
    assert failed_on_purpose(provider) == 1 and refresh_grants(provider) == 0


async def test_a_500_or_gateway_error_is_maybe_spent_at_a_rotating_provider(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> None:
    provider, made, row, _ = await _signed_in_and_due(oidc_provider_factory, signin_app)
    provider.fail_token_requests(502)  # a gateway: the provider may have answered it already
    result = await made.services.refresher.refresh(row["id"])
    assert result.outcome is Outcome.INTERRUPTED, result
    assert (await _session(made))["state"] == "reauth_required"
    assert failed_on_purpose(provider) == 1


async def test_an_intent_left_by_a_holder_that_died_is_never_replayed(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> None:
    provider = oidc_provider_factory()
    made = await signin_app(provider, provider_settings=EXPOSE, refresher=FAST)
    assert (await made.sign_in()).status_code == 302
    row = await _session(made)
    # A holder recorded its intent under fence 1 and died before recording the outcome.
    async with made.services.runtime.engine.begin() as conn:
        await conn.execute(
            update(sessions).where(sessions.c.id == row["id"]).values(intent_fence=1, fence=1)
        )
    await _into_grace(made)
    result = await made.services.refresher.refresh(row["id"])
    assert result.outcome is Outcome.INTERRUPTED
    assert result.record is not None and result.record.state == "reauth_required"
    assert refresh_grants(provider) == 0  # the old refresh token was not presented


async def test_a_non_rotating_provider_may_retry_after_an_interrupted_refresh(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> None:
    provider = oidc_provider_factory(rotate_refresh_tokens=False)
    made = await signin_app(
        provider,
        provider_settings={**EXPOSE, "rotating_refresh_tokens": False},
        refresher=FAST,
    )
    assert (await made.sign_in()).status_code == 302
    row = await _session(made)
    async with made.services.runtime.engine.begin() as conn:
        await conn.execute(
            update(sessions).where(sessions.c.id == row["id"]).values(intent_fence=1, fence=1)
        )
    await _into_grace(made)
    result = await made.services.refresher.refresh(row["id"])
    assert result.outcome is Outcome.REFRESHED
    assert refresh_grants(provider) == 1


async def test_the_background_refresher_keeps_a_session_fresh_across_lifetimes(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> None:
    provider = oidc_provider_factory()
    made = await signin_app(provider, provider_settings=EXPOSE, refresher=FAST)
    assert (await made.sign_in()).status_code == 302
    background = made.services.background
    for lifetime in range(3):
        await background.run_pass()
        await background.drain()
        assert refresh_grants(provider) == lifetime  # not due yet: nothing sent
        await _into_grace(made)
        await background.run_pass()
        await background.drain()
        assert refresh_grants(provider) == lifetime + 1
        row = await _session(made)
        assert row["state"] == "active" and row["intent_fence"] is None
        assert (await made.client.get("/v1/me")).status_code == 200
    assert reuse_errors(provider) == []
    status = (await made.client.get("/readyz")).json()["details"]["refresher"]
    assert status["shards_held"] == "16/16"
    await background.aclose()


async def test_user_info_refreshed_on_its_interval_never_overrides_signed_claims(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> None:
    accounts = {
        "mallory": {
            "sub": "mallory-0009",
            "email": "mallory@example.com",
            "name": "Mallory",
            "groups": ["staff"],
            AUTHZ_CLAIM: {"acctype": "user", "orgIds": []},
            "userinfo_overrides": {"groups": ["admins"], "email": "ceo@example.com"},
        }
    }
    provider = oidc_provider_factory(accounts=accounts)
    made = await signin_app(provider, provider_settings=EXPOSE, refresher=FAST)
    assert (await made.sign_in(login="mallory")).status_code == 302
    before = await _session(made)
    assert isinstance(made.clock, FakeClock)
    made.clock.advance(timedelta(minutes=16))  # user info is due (15 minutes), token too
    result = await made.services.refresher.refresh(before["id"])
    assert result.outcome is Outcome.REFRESHED
    after = await _session(made)
    assert utc(after["userinfo_at"]) > utc(before["userinfo_at"])
    claims = (await made.client.get("/v1/me")).json()["claims"]
    assert claims["groups"] == ["staff"] and claims["email"] == "mallory@example.com"


async def test_interactive_requests_racing_the_background_refresher_redeem_once(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> None:
    provider = oidc_provider_factory()
    made = await signin_app(provider, provider_settings=EXPOSE, refresher=FAST)
    assert (await made.sign_in()).status_code == 302
    background = made.services.background
    await background.run_pass()  # takes the shards; nothing due yet
    await _into_grace(made)

    async def in_background() -> None:
        await background.run_pass()
        await background.drain()

    results = await asyncio.gather(
        in_background(), *(made.client.get("/v1/me/token") for _ in range(5))
    )
    answers = [r for r in results[1:] if isinstance(r, httpx.Response)]
    assert len(answers) == 5 and {a.status_code for a in answers} == {200}
    assert len({a.json()["access_token"] for a in answers}) == 1
    assert refresh_grants(provider) == 1 and reuse_errors(provider) == []
    await background.aclose()
