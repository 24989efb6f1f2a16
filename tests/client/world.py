"""What the client tests share: a small stored policy, the questions asked about it, and a
transport that counts the requests that really went out."""

from __future__ import annotations

from typing import Any

import httpx

from watchword.bootstrap import create_admin_key
from watchword.client import Question, Resource
from watchword.rbac.store.roles import create_resource_type, create_role
from watchword.secret import Secret
from watchword.services import Services

__all__ = [
    "BOB",
    "ISS",
    "QUESTIONS",
    "CountingAsyncTransport",
    "CountingTransport",
    "cluster",
    "seed",
]

ISS = "https://id.example.com"
CLUSTERS = "compute:clusters"
GLOBAL_READER = "role_global_reader"

# An inline subject document (docs/authz.md): member and no-delete in acme, group sre.
BOB: dict[str, Any] = {
    "issuer": ISS,
    "id": "bob",
    "organizations": {"acme": ["role_member", "role_nodelete"]},
    "groups": ["grp_sre"],
}


def cluster(i: str, org: str | None = "acme", **extra: Any) -> Resource:
    return Resource(type=CLUSTERS, id=i, org_id=org, **extra)


# Allowed and denied, each level: (action, object, allowed?)
QUESTIONS: list[tuple[Question, bool]] = [
    (Question("read", cluster("c1")), True),  # organization: member reads
    (Question("delete", cluster("c1")), False),  # organization: no-delete denies
    (Question("read", cluster("c2", org="globex")), False),  # nothing in globex
    (Question("update", cluster("c3", owner=f"{ISS}|bob")), True),  # owner block
    (Question("read", cluster("c4", org=None, acl_groups={"grp_sre": ["read"]})), True),  # ACL
    (Question("update", cluster("c5", org=None)), False),  # nothing decides: deny
]


async def seed(services: Services) -> Secret:
    """The policy of ``tests/api/test_authz_http.py`` plus a global reader role; returns a
    bootstrap admin key."""
    ctx = services.store
    await create_resource_type(ctx, name=CLUSTERS, actions=["create", "read", "update", "delete"])
    await create_role(
        ctx,
        role_id="role_member",
        name="member",
        permissions={
            "organization": [{"resource_type": CLUSTERS, "actions": ["read"]}],
            "owner": [{"resource_type": CLUSTERS, "actions": ["*"]}],
        },
    )
    await create_role(
        ctx,
        role_id="role_nodelete",
        name="no-delete",
        permissions={
            "organization": [{"resource_type": CLUSTERS, "actions": ["delete"], "effect": "deny"}]
        },
    )
    await create_role(
        ctx,
        role_id=GLOBAL_READER,
        name="global-reader",
        permissions={"global": [{"resource_type": CLUSTERS, "actions": ["read"]}]},
    )
    _, secret = await create_admin_key(services.runtime.engine, services.runtime.clock)
    return secret


class CountingAsyncTransport(httpx.AsyncBaseTransport):
    """Passes every request on to ``inner`` and keeps it in ``requests``."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class CountingTransport(httpx.BaseTransport):
    """The blocking counterpart of :class:`CountingAsyncTransport`."""

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self.inner = inner or httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()
