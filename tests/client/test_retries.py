"""Retries (503, ``Retry-After``, connection errors) and answers no real server gives on demand.

A real watchword server cannot be made to answer 503, drop a connection or time out when a
test wants it to, so these tests use ``httpx.MockTransport`` as the server; that is the
only place the client tests do. Waits are recorded by a ``sleep`` stand-in, never slept,
so nothing here depends on timing. Every other behaviour is tested against the real app
(``test_async_client.py``, ``test_sync_client.py``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from tests.client.world import BOB, cluster

from watchword import errors
from watchword.client import (
    NO_RETRY,
    AsyncClient,
    Client,
    Decision,
    Retry,
    problem_of,
)
from watchword.client._errors import parse_retry_after

BASE = "http://watchword.test"
KEY = "wwa_" + "topsecret" * 5
PLAINTEXT = "wwp_abcd" + "x" * 40
ALLOWED = {
    "allowed": True,
    "decided_by": "organization",
    "role": "role_member",
    "permission": {"resource_type": "compute:clusters", "actions": ["read"], "effect": "allow"},
    "acl_entry": None,
    "scope_allowed": True,
}
CREATED = {
    "id": "tok_1",
    "kind": "personal",
    "name": "ci",
    "owner_issuer": "https://id.example.com",
    "owner_subject": "alice",
    "organization_id": None,
    "scopes": ["*:*"],
    "permission": "ro",
    "prefix": "wwp_abcd",
    "state": "active",
    "created_at": "2025-01-01T00:00:00Z",
    "expires_at": None,
    "last_used_at": None,
    "revoked_at": None,
    "rotated_from": None,
    "token": PLAINTEXT,
}


def problem(status: int, code: str, **headers: str) -> httpx.Response:
    body = {
        "type": f"https://watchword.dev/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": f"{code} detail",
        "instance": "/v1/authz/check",
        "request_id": "req-1",
    }
    return httpx.Response(
        status, json=body, headers={"content-type": "application/problem+json", **headers}
    )


Step = httpx.Response | Exception


class Script:
    """A server that answers with the given steps in turn (the last one repeats)."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        # A fresh response each time: one is read once, by one client.
        return httpx.Response(step.status_code, headers=step.headers, content=step.content)


class Waits(list[float]):
    def sleep(self, seconds: float) -> None:
        self.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Harness:
    """The same scenario through ``Client`` and ``AsyncClient``."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.waits = Waits()

    async def call(
        self, script: Script, method: str, *args: Any, retry: Retry | None = None, **kw: Any
    ) -> Any:
        if self.mode == "sync":
            with Client(
                BASE,
                KEY,
                transport=httpx.MockTransport(script),
                retry=retry,
                sleep=self.waits.sleep,
            ) as client:
                return getattr(client, method)(*args, **kw)
        async with AsyncClient(
            BASE, KEY, transport=httpx.MockTransport(script), retry=retry, sleep=self.waits.asleep
        ) as aclient:
            return await getattr(aclient, method)(*args, **kw)


@pytest.fixture
def harness(mode: str) -> Harness:
    return Harness(mode)


def check_args() -> tuple[Any, ...]:
    return ("check", BOB, "read", cluster("c1"))


def ok() -> httpx.Response:
    return httpx.Response(200, json=ALLOWED)


# 503 ---------------------------------------------------------------------------------------


async def test_503_is_tried_again_with_growing_jittered_waits(harness: Harness) -> None:
    script = Script(problem(503, "database_unavailable"), problem(503, "unavailable"), ok())
    retry = Retry(attempts=3, backoff=0.5, max_backoff=10.0)
    decision = await harness.call(script, *check_args(), retry=retry)
    assert decision == Decision.from_json(ALLOWED) and len(script.seen) == 3
    assert len(harness.waits) == 2
    assert 0 <= harness.waits[0] <= 0.5 and 0 <= harness.waits[1] <= 1.0


async def test_503_waits_without_jitter_double_up_to_the_cap(harness: Harness) -> None:
    script = Script(problem(503, "unavailable"))
    retry = Retry(attempts=5, backoff=1.0, max_backoff=3.0, jitter=False)
    with pytest.raises(errors.Unavailable):
        await harness.call(script, *check_args(), retry=retry)
    assert harness.waits == [1.0, 2.0, 3.0, 3.0] and len(script.seen) == 5


async def test_retry_after_is_honoured_and_attempts_are_bounded(harness: Harness) -> None:
    script = Script(problem(503, "database_unavailable", **{"Retry-After": "7"}))
    retry = Retry(attempts=3, backoff=0.25, max_backoff=0.25)
    with pytest.raises(errors.DatabaseUnavailable) as caught:
        await harness.call(script, *check_args(), retry=retry)
    assert len(script.seen) == 3  # bounded: three tries in all
    assert len(harness.waits) == 2 and all(7 <= w <= 7.25 for w in harness.waits)
    found = problem_of(caught.value)
    assert found is not None and found.status == 503 and found.retry_after == 7
    assert found.request_id == "req-1" and caught.value.code == "database_unavailable"


async def test_a_retry_after_beyond_the_cap_is_not_waited_for(harness: Harness) -> None:
    script = Script(problem(503, "unavailable", **{"Retry-After": "120"}), ok())
    with pytest.raises(errors.Unavailable) as caught:
        await harness.call(script, *check_args(), retry=Retry(max_retry_after=30))
    assert len(script.seen) == 1 and harness.waits == []
    assert vars(caught.value)["retry_after"] == 120


async def test_503_is_tried_again_even_for_a_call_that_is_not_idempotent(
    harness: Harness,
) -> None:
    script = Script(problem(503, "unavailable"), httpx.Response(201, json=CREATED))
    created = await harness.call(script, "create_token", "ci", owner_subject="alice")
    assert created.id == "tok_1" and len(script.seen) == 2
    assert PLAINTEXT not in repr(created) and created.token.reveal() == PLAINTEXT


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (500, "internal", errors.WatchwordError),
        (429, "too_many_failed_authentications", errors.TooManyFailedAttempts),
        (400, "unknown_action", errors.UnknownAction),
        (409, "already_exists", errors.AlreadyExists),
    ],
)
async def test_other_errors_are_raised_at_once(
    harness: Harness, status: int, code: str, cls: type[errors.WatchwordError]
) -> None:
    script = Script(problem(status, code, **{"Retry-After": "3"}), ok())
    with pytest.raises(cls) as caught:
        await harness.call(script, *check_args())
    assert type(caught.value) is cls and len(script.seen) == 1 and harness.waits == []
    if isinstance(caught.value, errors.TooManyFailedAttempts):
        assert caught.value.retry_after_s == 3


# Connection errors -------------------------------------------------------------------------


async def test_a_connection_error_is_tried_again_then_raised_as_unavailable(
    harness: Harness,
) -> None:
    refused = httpx.ConnectError("connection refused")
    script = Script(refused, ok())
    assert (await harness.call(script, *check_args())).allowed and len(script.seen) == 2

    never = Script(refused)
    with pytest.raises(errors.Unavailable) as caught:
        await harness.call(never, *check_args(), retry=Retry(attempts=4))
    assert len(never.seen) == 4
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert problem_of(caught.value) is None and vars(caught.value)["status"] is None
    assert KEY not in repr(caught.value) and KEY not in str(caught.value)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
        httpx.ReadError("connection reset"),
    ],
)
async def test_after_the_request_may_have_arrived_only_idempotent_calls_are_tried_again(
    harness: Harness, failure: Exception
) -> None:
    read = Script(failure, ok())
    assert (await harness.call(read, *check_args())).allowed and len(read.seen) == 2
    revoke = Script(failure, httpx.Response(200, json={**CREATED, "state": "revoked"}))
    assert (await harness.call(revoke, "revoke_token", "tok_1")).state == "revoked"
    assert len(revoke.seen) == 2

    create = Script(failure, httpx.Response(201, json=CREATED))
    with pytest.raises(errors.Unavailable) as caught:
        await harness.call(create, "create_token", "ci", owner_subject="alice")
    assert len(create.seen) == 1 and caught.value.__cause__ is failure
    rotate = Script(failure, httpx.Response(201, json=CREATED))
    with pytest.raises(errors.Unavailable):
        await harness.call(rotate, "rotate_token", "tok_1")
    assert len(rotate.seen) == 1


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError("refused"), httpx.ConnectTimeout("connect timed out")]
)
async def test_a_call_that_is_not_idempotent_is_tried_again_when_it_never_left(
    harness: Harness, failure: Exception
) -> None:
    script = Script(failure, httpx.Response(201, json=CREATED))
    created = await harness.call(script, "create_token", "ci", owner_subject="alice")
    assert created.id == "tok_1" and len(script.seen) == 2


async def test_no_retry_means_one_try(harness: Harness) -> None:
    script = Script(problem(503, "unavailable"), ok())
    with pytest.raises(errors.Unavailable):
        await harness.call(script, *check_args(), retry=NO_RETRY)
    assert len(script.seen) == 1 and harness.waits == []


# Answers no watchword server gives -------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "cls", "code"),
    [
        (problem(413, "payload_too_large"), errors.InvalidInput, "payload_too_large"),
        (problem(404, "gone_fishing"), errors.NotFound, "gone_fishing"),
        (problem(418, "teapot"), errors.WatchwordError, "teapot"),
        (
            httpx.Response(502, text="<html>Bad gateway</html>", headers={"X-Request-ID": "r2"}),
            errors.WatchwordError,
            "http_error",
        ),
    ],
)
async def test_an_unknown_code_keeps_its_code_on_the_class_of_its_status(
    harness: Harness, response: httpx.Response, cls: type[errors.WatchwordError], code: str
) -> None:
    with pytest.raises(errors.WatchwordError) as caught:
        await harness.call(Script(response), *check_args())
    exc = caught.value
    assert type(exc) is cls and exc.code == code
    found = problem_of(exc)
    assert found is not None and found.status == response.status_code
    if response.status_code == 502:
        assert found.request_id == "r2" and "502" in exc.detail and found.title == "Bad Gateway"


# The credential and the logs ---------------------------------------------------------------


async def test_the_credential_is_sent_as_bearer_and_never_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    script = Script(problem(503, "unavailable"), ok())
    with caplog.at_level(logging.DEBUG):
        await harness.call(script, *check_args())
    assert script.seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert script.seen[0].headers["user-agent"].startswith("watchword-client/")
    assert any("503" in r.getMessage() for r in caplog.records if r.name == "watchword.client")
    assert KEY not in caplog.text


async def test_introspection_sends_the_token_as_a_form_and_keeps_it_out_of_errors(
    harness: Harness,
) -> None:
    token = "wwp_" + "q" * 40
    script = Script(problem(401, "unauthenticated"))
    with pytest.raises(errors.AuthenticationError) as caught:
        await harness.call(script, "introspect", token)
    assert script.seen[0].content == f"token={token}".encode()
    assert script.seen[0].headers["content-type"] == "application/x-www-form-urlencoded"
    assert token not in repr(caught.value) and token not in str(problem_of(caught.value))


# Pure parts --------------------------------------------------------------------------------


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(later, now=now.timestamp()) == 90.0
    assert (
        parse_retry_after(
            format_datetime(now - timedelta(hours=1), usegmt=True), now=now.timestamp()
        )
        == 0.0
    )
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after("inf") is None and parse_retry_after("nan") is None


def test_retry_refuses_nonsense_and_gives_up_after_its_attempts() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Retry(attempts=0)
    with pytest.raises(ValueError, match="negative"):
        Retry(backoff=-1)
    retry = Retry(attempts=2, backoff=1.0, uniform=lambda: 0.5)
    assert retry.delay(1) == 0.5 and retry.delay(2) is None
    assert retry.delay(1, retry_after=4.0) == 4.5
    assert Retry(attempts=200, max_backoff=9.0, jitter=False).delay(150) == 9.0
