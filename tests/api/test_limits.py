"""Request body and field size limits (docs/operations.md)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from watchword.api.middleware import MAX_BODY_BYTES
from watchword.api.schemas import MAX_ITEMS, MAX_TEXT
from watchword.bootstrap import create_admin_key
from watchword.runtime import Runtime

Headers = dict[str, str]


@pytest.fixture
async def admin(runtime: Runtime) -> Headers:
    _, secret = await create_admin_key(runtime.engine, runtime.clock)
    return {"Authorization": f"Bearer {secret.reveal()}"}


async def test_limits_a_body_over_the_limit_is_413_problem(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    huge = {"name": "big", "description": "x" * (10 * 1024 * 1024)}
    r = await client.post("/v1/organizations", json=huge, headers=admin)
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "payload_too_large"
    assert r.json()["request_id"] == r.headers["x-request-id"]
    listed = await client.get("/v1/organizations", headers=admin)
    assert listed.json()["items"] == []


async def test_limits_a_streamed_body_without_length_is_cut_at_the_limit(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    payload = json.dumps({"name": "big", "description": "y" * MAX_BODY_BYTES}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    r = await client.post(
        "/v1/organizations",
        content=chunks(),
        headers={**admin, "Content-Type": "application/json"},
    )
    assert "content-length" not in r.request.headers
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large", r.text


async def test_limits_fields_and_lists_have_maximum_lengths_with_pointers(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    ok = await client.post(
        "/v1/organizations", json={"name": "o", "description": "d" * MAX_TEXT}, headers=admin
    )
    assert ok.status_code == 201, ok.text
    org = ok.json()["id"]
    cases = [
        ("/v1/organizations", {"name": "p", "description": "d" * (MAX_TEXT + 1)}, "/description"),
        (
            f"/v1/organizations/{org}/groups",
            {"name": "g", "role_ids": ["r"] * (MAX_ITEMS + 1)},
            "/role_ids",
        ),
        ("/v1/issuers", {"url": "https://" + "i" * 600}, "/url"),
        ("/v1/resource-types", {"name": "t", "actions": ["a"] * (MAX_ITEMS + 1)}, "/actions"),
    ]
    for path, body, pointer in cases:
        r = await client.post(path, json=body, headers=admin)
        assert r.status_code == 422 and r.json()["pointer"] == pointer, (path, r.text)
