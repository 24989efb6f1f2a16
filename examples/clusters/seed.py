"""Demo data in a watchword server: the policy, two organizations, their members, tokens.

Everything goes through watchword's HTTP API with an administrator key (``watchword admin
bootstrap``), as an operator's script would: the administration routes for the policy and
the organizations, the typed client (``watchword.client.AsyncClient``) for the tokens.

- the resource type ``compute:clusters`` (create, read, update, delete, share) and two
  roles: ``cluster-member`` (organization: create, read; owner: ``*``, so an owner may do
  anything to *their* clusters while they are a member) and ``cluster-admin``
  (organization: ``*``);
- organizations ``acme`` (alice and bob members, carol admin) and ``globex`` (gus member);
- personal tokens for each user, narrowed to ``compute:clusters:*``, plus ``alice-ro``
  (alice's, read-only);
- the app's own subject ``clusters-app`` bound to the catalogue's ``authz-client`` role,
  and its token (scope ``watchword:authz:check``): the credential of remote mode.

Run once against a fresh database: ``python -m examples.clusters.seed URL`` with the admin
key in ``CLUSTERS_ADMIN_KEY``; it prints shell ``export`` lines (the tokens included: this
is the one time they are shown).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from watchword.client import AsyncClient
from watchword.secret import Secret

from .models import CLUSTERS

__all__ = ["APP_SUBJECT", "Demo", "seed"]

APP_SUBJECT = "clusters-app"
MEMBER_ROLE = {
    "name": "cluster-member",
    "description": "Creates and reads the organization's clusters; owners do anything to theirs.",
    "permissions": {
        "organization": [{"resource_type": CLUSTERS, "actions": ["create", "read"]}],
        "owner": [{"resource_type": CLUSTERS, "actions": ["*"]}],
    },
}
ADMIN_ROLE = {
    "name": "cluster-admin",
    "description": "Does anything to the organization's clusters.",
    "permissions": {"organization": [{"resource_type": CLUSTERS, "actions": ["*"]}]},
}
# user -> (organization, role)
MEMBERS = {
    "alice": ("acme", "member"),
    "bob": ("acme", "member"),
    "carol": ("acme", "admin"),
    "gus": ("globex", "member"),
}


@dataclass(frozen=True, slots=True)
class Demo:
    """What :func:`seed` made: the users' issuer, the organizations' ids, and the tokens
    (``alice``, ``bob``, ``carol``, ``gus``, ``alice-ro``, and ``clusters-app``)."""

    issuer: str
    acme: str
    globex: str
    tokens: Mapping[str, Secret]


async def seed(
    url: str, admin_key: Secret, *, transport: httpx.AsyncBaseTransport | None = None
) -> Demo:
    """Seed the watchword server at ``url`` (``transport``: e.g. ``httpx.ASGITransport``)."""
    headers = {"Authorization": f"Bearer {admin_key.reveal()}"}
    async with (
        AsyncClient(url, admin_key, transport=transport) as client,
        httpx.AsyncClient(base_url=url, headers=headers, transport=transport) as http,
    ):
        await _post(
            http,
            "/v1/resource-types",
            {"name": CLUSTERS, "actions": ["create", "read", "update", "delete", "share"]},
        )
        roles = {
            "member": (await _post(http, "/v1/roles", MEMBER_ROLE))["id"],
            "admin": (await _post(http, "/v1/roles", ADMIN_ROLE))["id"],
        }
        orgs = {
            name: (await _post(http, "/v1/organizations", {"name": name}))["id"]
            for name in ("acme", "globex")
        }
        for org_name, role in sorted({(org, role) for org, role in MEMBERS.values()}):
            users = [u for u, (o, r) in MEMBERS.items() if (o, r) == (org_name, role)]
            await _post(
                http,
                f"/v1/organizations/{orgs[org_name]}/groups",
                {
                    "name": f"cluster-{role}s",
                    "members": [{"id": user} for user in users],  # watchword's own issuer
                    "role_ids": [roles[role]],
                },
            )
        tokens: dict[str, Secret] = {}
        app = await client.create_token(
            APP_SUBJECT, owner_subject=APP_SUBJECT, scopes=["watchword:authz:check"]
        )
        tokens[APP_SUBJECT] = app.token
        issuer = app.owner_issuer  # watchword's issuer, which the users' tokens carry too
        await _post(
            http,
            "/v1/role-bindings",
            {"issuer": issuer, "subject_id": APP_SUBJECT, "role_ids": ["authz-client"]},
        )
        for user in MEMBERS:
            made = await client.create_token(
                "clusters", owner_subject=user, scopes=[f"{CLUSTERS}:*"], permission="rw"
            )
            tokens[user] = made.token
        read_only = await client.create_token(
            "clusters-ro", owner_subject="alice", scopes=[f"{CLUSTERS}:*"], permission="ro"
        )
        tokens["alice-ro"] = read_only.token
    return Demo(issuer=issuer, acme=orgs["acme"], globex=orgs["globex"], tokens=tokens)


async def _post(http: httpx.AsyncClient, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
    response = await http.post(path, json=body)
    if response.is_error:
        raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


def _exports(demo: Demo) -> str:
    lines = [
        f"export CLUSTERS_ISSUER={demo.issuer}",
        f"export ACME={demo.acme} GLOBEX={demo.globex}",
        f"export CLUSTERS_WATCHWORD_TOKEN={demo.tokens[APP_SUBJECT].reveal()}",
    ]
    lines += [
        f"export {name.upper().replace('-', '_')}={token.reveal()}"
        for name, token in demo.tokens.items()
        if name != APP_SUBJECT
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    key = os.environ.get("CLUSTERS_ADMIN_KEY")
    if len(argv) != 1 or not key:
        sys.stderr.write("usage: CLUSTERS_ADMIN_KEY=wwb_… python -m examples.clusters.seed URL\n")
        return 2
    demo = asyncio.run(seed(argv[0], Secret(key)))
    sys.stdout.write(_exports(demo) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
