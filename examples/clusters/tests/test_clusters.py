"""The clusters app, in both modes (``stage.py``): every test runs once embedded and
once remote, with the same credentials and the same expectations."""

from typing import Any

import httpx
from examples.clusters.tests.stage import Stage
from sqlalchemy import text

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code, body
    return body


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [c["name"] for c in response.json()]


# Authentication ------------------------------------------------------------------------


async def test_anonymous_requests_are_401_problems_before_any_lookup(stage: Stage) -> None:
    missing = stage.path("acme") + "/999999"
    for method, path in (
        ("GET", stage.path("acme")),
        ("POST", stage.path("acme")),
        ("GET", stage.path("acme", "alpha")),
        ("GET", missing),  # 401, not the app's 404: nothing is looked up for a stranger
        ("DELETE", stage.path("acme", "alpha")),
    ):
        response = await stage.http.request(method, path, json={"name": "x"})
        assert_problem(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert stage.cluster_statements() == []


async def test_a_garbage_token_is_401_and_bad_input_is_a_422_problem(stage: Stage) -> None:
    response = await stage.http.get(stage.path("acme"), headers={"Authorization": "Bearer nope"})
    assert_problem(response, 401, "token_malformed")
    response = await stage.http.post(stage.path("acme"), json={}, headers=stage.as_("alice"))
    assert_problem(response, 422, "invalid_request")


# Lists: filtered by the database -------------------------------------------------------


async def test_a_members_list_is_filtered_in_sql_and_other_orgs_rows_are_never_fetched(
    stage: Stage,
) -> None:
    assert names(await stage.http.get(stage.path("acme"), headers=stage.as_("alice"))) == [
        "alpha",
        "bravo",
    ]
    [(sql, params)] = stage.cluster_statements()
    where = sql.split("WHERE", 1)[1]
    # The path's organization and the policy's condition (acme allows read to members) are
    # both in the statement; nothing is filtered in Python afterwards.
    assert "clusters.org_id = ?" in where
    assert "clusters.org_id IN (?)" in where
    assert stage.demo.acme in params and stage.demo.globex not in params
    # The very statement the app ran returns no row of another organization.
    async with stage.database.connect() as conn:
        fetched = (await conn.exec_driver_sql(sql, tuple(params))).mappings()
        orgs = {row["org_id"] for row in fetched}
        every_org = set((await conn.execute(text("SELECT org_id FROM clusters"))).scalars())
    assert orgs == {stage.demo.acme}
    assert stage.demo.globex in every_org  # there were globex rows to leave out


async def test_a_share_reaches_the_list_through_the_acl_in_sql(stage: Stage) -> None:
    gus = stage.as_("gus")  # a member of globex only
    assert names(await stage.http.get(stage.path("acme"), headers=gus)) == []
    shared = await stage.http.put(
        stage.path("acme", "alpha") + "/shares/gus",
        json={"actions": ["read"]},
        headers=stage.as_("alice"),
    )
    assert shared.status_code == 200, shared.text
    assert shared.json()["shares"] == {"gus": ["read"]}
    stage.statements.clear()
    assert names(await stage.http.get(stage.path("acme"), headers=gus)) == ["alpha"]
    [(sql, _)] = stage.cluster_statements()
    assert "json_each(clusters.shares)" in sql  # the share is tested by the database
    # The list agrees with the item checks, row by row.
    for cluster, status in (("alpha", 200), ("bravo", 403)):
        response = await stage.http.get(stage.path("acme", cluster), headers=gus)
        assert response.status_code == status, response.text
    # read, and nothing else
    response = await stage.http.patch(stage.path("acme", "alpha"), json={"name": "g"}, headers=gus)
    assert_problem(response, 403, "forbidden")


async def test_a_list_pages_in_sql(stage: Stage) -> None:
    alice = stage.as_("alice")
    first = await stage.http.get(stage.path("acme"), params={"limit": 1}, headers=alice)
    assert names(first) == ["alpha"]
    after = first.json()[-1]["id"]
    rest = await stage.http.get(stage.path("acme"), params={"after": after}, headers=alice)
    assert names(rest) == ["bravo"]


# Items ---------------------------------------------------------------------------------


async def test_a_cluster_of_another_organization_than_the_paths_is_404(stage: Stage) -> None:
    golf = stage.ids["golf"]  # globex's
    in_acme = f"{stage.path('acme')}/{golf}"
    for user in ("alice", "carol"):  # a member and an admin of acme
        for method in ("GET", "PATCH", "DELETE"):
            response = await stage.http.request(
                method, in_acme, json={"name": "x"}, headers=stage.as_(user)
            )
            assert_problem(response, 404, "not_found")
    # Its owner, through the wrong organization, does not find it either.
    response = await stage.http.get(in_acme, headers=stage.as_("gus"))
    assert_problem(response, 404, "not_found")
    assert (await stage.http.get(stage.path("globex", "golf"), headers=stage.as_("gus"))).json()[
        "name"
    ] == "golf"


async def test_the_owner_may_delete_and_another_member_may_not(stage: Stage) -> None:
    alpha = stage.path("acme", "alpha")
    assert_problem(await stage.http.delete(alpha, headers=stage.as_("bob")), 403, "forbidden")
    response = await stage.http.patch(alpha, json={"name": "b"}, headers=stage.as_("bob"))
    assert_problem(response, 403, "forbidden")
    assert (await stage.http.get(alpha, headers=stage.as_("bob"))).status_code == 200

    deleted = await stage.http.delete(alpha, headers=stage.as_("alice"))
    assert deleted.status_code == 204, deleted.text
    assert_problem(await stage.http.get(alpha, headers=stage.as_("alice")), 404, "not_found")


async def test_an_admin_may_update_and_delete_anyones_cluster(stage: Stage) -> None:
    bravo = stage.path("acme", "bravo")
    carol = stage.as_("carol")
    renamed = await stage.http.patch(bravo, json={"name": "b2"}, headers=carol)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "b2" and renamed.json()["owner_id"] == "bob"
    assert (await stage.http.delete(bravo, headers=carol)).status_code == 204


async def test_create_is_checked_in_the_paths_organization(stage: Stage) -> None:
    made = await stage.http.post(
        stage.path("acme"), json={"name": "delta"}, headers=stage.as_("bob")
    )
    assert made.status_code == 201, made.text
    assert made.json()["owner_id"] == "bob"
    response = await stage.http.post(
        stage.path("acme"), json={"name": "x"}, headers=stage.as_("gus")
    )
    assert_problem(response, 403, "forbidden")


async def test_a_read_only_token_reads_and_may_not_write(stage: Stage) -> None:
    ro = stage.as_("alice-ro")  # alice's own clusters, alice's roles, a read-only token
    alpha = stage.path("acme", "alpha")
    assert (await stage.http.get(alpha, headers=ro)).status_code == 200
    assert names(await stage.http.get(stage.path("acme"), headers=ro)) == ["alpha", "bravo"]
    for method, path, body in (
        ("POST", stage.path("acme"), {"name": "x"}),
        ("PATCH", alpha, {"name": "x"}),
        ("DELETE", alpha, None),
        ("PUT", alpha + "/shares/bob", {"actions": ["read"]}),
    ):
        response = await stage.http.request(method, path, json=body, headers=ro)
        assert_problem(response, 403, "forbidden")
    # The same writes with alice's read-write token are allowed (she owns alpha).
    assert (await stage.http.delete(alpha, headers=stage.as_("alice"))).status_code == 204
