"""The route table: parsing with errors that name the field, matching, canonical paths."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchword.edge.routes import Allow, canonical_path, parse_routes
from watchword.errors import InvalidInput, NonCanonicalPath

PROJECTS: dict[str, Any] = {
    "name": "projects",
    "path": "/orgs/{org}/projects/{project}/**",
    "resource": "compute:clusters",
    "actions": {"GET": "read"},
    "action": "update",
    "object": {"id": "{project}", "organization": "{org}", "project": "{project}"},
}


def table(*routes: dict[str, Any]) -> Any:
    return parse_routes({"routes": list(routes)})


def test_first_matching_route_decides_with_its_placeholders_and_method_action() -> None:
    t = table(
        {"name": "health", "path": "/healthz", "allow": "anonymous"},
        PROJECTS,
        {"name": "rest", "path": "/**", "allow": "authenticated"},
    )
    m = t.match(host="app.test", path="/orgs/acme/projects/web/runs/7", method="GET")
    assert m is not None and m.route.name == "projects" and m.action == "read"
    assert m.object == {"id": "web", "organization": "acme", "project": "web"}
    post = t.match(host="app.test", path="/orgs/acme/projects/web", method="POST")
    assert post is not None and post.action == "update"  # ** matches no segment too
    assert t.match(host="x", path="/healthz", method="GET").route.allow is Allow.ANONYMOUS
    assert t.match(host="x", path="/healthz/x", method="GET").route.name == "rest"
    assert t.match(host="x", path="/", method="GET").route.name == "rest"
    assert parse_routes({"routes": []}).match(host="x", path="/", method="GET") is None


def test_hosts_methods_and_wildcards_narrow_a_route() -> None:
    t = table(
        {
            "name": "api",
            "path": "/api/*",
            "hosts": ["*.example.com", "Exact.Test:8443"],
            "methods": ["get"],
            "allow": "authenticated",
        }
    )
    assert t.match(host="a.example.com", path="/api/x", method="GET") is not None
    assert t.match(host="a.example.com:443", path="/api/x", method="GET") is not None
    assert t.match(host="a.b.example.com", path="/api/x", method="GET") is None
    assert t.match(host="example.com", path="/api/x", method="GET") is None
    assert t.match(host="exact.test:8443", path="/api/x", method="GET") is not None
    assert t.match(host="exact.test:9000", path="/api/x", method="GET") is None
    post = t.match(host="a.example.com", path="/api/x", method="POST")
    assert post is not None and not post.method_allowed  # denied, never a later route's
    head = t.match(host="a.example.com", path="/api/x", method="HEAD")
    assert head is not None and head.method_allowed  # a HEAD is a GET without the body
    assert t.match(host="A.Example.com.", path="/api/x", method="GET") is not None
    assert t.match(host="exact.test.:8443", path="/api/x", method="GET") is not None
    assert t.match(host="a.example.com", path="/api/x/y", method="GET") is None  # * is one


@pytest.mark.parametrize(
    ("route", "pointer", "words"),
    [
        ({"name": "a", "path": "x", "allow": "anonymous"}, "/routes/0/path", "start with /"),
        ({"name": "a", "path": "/**/x", "allow": "anonymous"}, "/routes/0/path", "last"),
        ({"name": "a", "path": "/{a}/{a}", "allow": "anonymous"}, "/routes/0/path", "twice"),
        ({"name": "a", "path": "/a/../b", "allow": "anonymous"}, "/routes/0/path", "segment"),
        ({"name": "a", "path": "/a"}, "/routes/0", "who may pass"),
        ({"name": "a", "path": "/a", "allow": "all"}, "/routes/0/allow", "anonymous"),
        ({"name": "a", "path": "/a", "resource": "t:x"}, "/routes/0/action", "action"),
        (
            {**PROJECTS, "action": None, "actions": {"GET": "read"}},
            "/routes/0/actions",
            "no action for",
        ),
        ({**PROJECTS, "object": {"id": "{nope}"}}, "/routes/0/object/id", "placeholder"),
        ({**PROJECTS, "object": {"owner": "x"}}, "/routes/0/object/owner", "not one of"),
        ({**PROJECTS, "methods": ["FETCH"]}, "/routes/0/methods", "FETCH"),
        ({**PROJECTS, "hosts": ["bad host"]}, "/routes/0/hosts/0", "host name"),
        ({**PROJECTS, "assertion": {"aud": "x"}}, "/routes/0/assertion", "audience"),
        ({**PROJECTS, "colour": "red"}, "/routes/0", "unknown field 'colour'"),
        (
            {"name": "a", "path": "/a", "allow": "anonymous", "resource": "t"},
            "/routes/0/resource",
            "only to allow: policy",
        ),
    ],
)
def test_a_bad_route_is_refused_naming_its_field(
    route: dict[str, Any], pointer: str, words: str
) -> None:
    route = {k: v for k, v in route.items() if v is not None}
    with pytest.raises(InvalidInput) as caught:
        table(route)
    assert caught.value.pointer == pointer and words in caught.value.detail


def test_route_names_are_unique() -> None:
    with pytest.raises(InvalidInput) as caught:
        table(PROJECTS, PROJECTS)
    assert caught.value.pointer == "/routes/1/name"


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("/", "/"),
        ("/a/b?x=1#f", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("/caf%C3%A9/%7Euser", "/café/~user"),
    ],
)
def test_canonical_paths(raw: str, path: str) -> None:
    assert canonical_path(raw) == path


@pytest.mark.parametrize(
    "raw",
    [
        "a",
        "//evil/x",
        "/a//b",
        "/a/./b",
        "/a/../b",
        "/a/%2e%2E/b",
        "/a%2Fb",
        "/a%5Cb",
        "/%00",
        "/%ff",
    ],
)
def test_ambiguous_paths_are_refused(raw: str) -> None:
    with pytest.raises(NonCanonicalPath):
        canonical_path(raw)


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=5))
def test_a_canonical_path_is_a_fixed_point_or_refused(segments: list[str]) -> None:
    from urllib.parse import quote

    raw = "/" + "/".join(quote(s, safe="") for s in segments)
    try:
        once = canonical_path(raw)
    except NonCanonicalPath:
        return
    # What was accepted names its segments exactly, with nothing that could split them.
    assert once.split("/")[1:] == segments


def test_a_method_the_route_does_not_list_never_falls_through_to_a_later_route() -> None:
    t = table(
        {"name": "admin", "path": "/admin/**", "methods": ["GET"], "allow": "authenticated"},
        {"name": "rest", "path": "/**", "allow": "anonymous"},
    )
    m = t.match(host="x", path="/admin/secret", method="OPTIONS")
    assert m is not None and m.route.name == "admin" and not m.method_allowed


def test_trailing_slashes_and_placeholders() -> None:
    t = table(
        {"name": "admin", "path": "/admin", "allow": "authenticated"},
        PROJECTS,
        {"name": "rest", "path": "/**", "allow": "anonymous"},
    )
    assert t.match(host="x", path="/admin/", method="GET").route.name == "admin"
    empty = t.match(host="x", path="/orgs/acme/projects/", method="GET")
    assert empty is not None and empty.route.name == "rest"  # {project} is never ""
    head = t.match(host="x", path="/orgs/acme/projects/web", method="HEAD")
    assert head is not None and head.action == "read"  # GET's action, not the default
