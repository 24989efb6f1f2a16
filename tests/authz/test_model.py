"""Model values, policy validation and parsing (pointers on errors, round trips)."""

from __future__ import annotations

import pytest

from watchword.authz import (
    Effect,
    Level,
    Object,
    Permission,
    Policy,
    Role,
    UnknownRole,
    check,
    compile_subject,
    parse_object,
    parse_policy,
    parse_role,
    parse_subject,
)
from watchword.errors import InvalidInput, UnknownAction, UnknownResourceType

BASE = {
    "resource_types": [{"name": "compute:clusters", "actions": ["read", "delete"]}],
    "roles": [
        {
            "name": "reader",
            "permissions": {"organization": [{"resource_type": "*", "actions": ["read"]}]},
        }
    ],
}


def with_role(role: object) -> dict[str, object]:
    roles = BASE["roles"]
    assert isinstance(roles, list)
    return {**BASE, "roles": [*roles, role]}


@pytest.mark.parametrize(
    ("role", "error", "pointer"),
    [
        (
            {
                "name": "x",
                "permissions": {"organization": [{"resource_type": "nope", "actions": ["read"]}]},
            },
            UnknownResourceType,
            "/roles/1/permissions/organization/0/resource_type",
        ),
        (
            {
                "name": "x",
                "permissions": {
                    "owner": [{"resource_type": "compute:clusters", "actions": ["fly"]}]
                },
            },
            UnknownAction,
            "/roles/1/permissions/owner/0/actions",
        ),
        (
            {"name": "x", "permissions": {"galaxy": []}},
            InvalidInput,
            "/roles/1/permissions/galaxy",
        ),
        (
            {
                "name": "x",
                "permissions": {
                    "global": [{"resource_type": "*", "actions": ["read"], "effect": "maybe"}]
                },
            },
            InvalidInput,
            "/roles/1/permissions/global/0/effect",
        ),
        ({"name": "reader"}, InvalidInput, "/roles/1/name"),
        ({"permissions": {}}, InvalidInput, "/roles/1/name"),
    ],
)
def test_parse_policy_when_role_is_malformed_points_at_field(
    role: object, error: type[InvalidInput], pointer: str
) -> None:
    with pytest.raises(error) as info:
        parse_policy(with_role(role))
    assert info.value.pointer == pointer


def test_policy_when_change_is_invalid_keeps_previous_policy() -> None:
    policy = parse_policy(BASE)
    bad = parse_role(
        {"name": "bad", "permissions": {"global": [{"resource_type": "nope", "actions": ["read"]}]}}
    )
    with pytest.raises(UnknownResourceType):
        policy.with_role(bad)
    assert set(policy.roles) == {"reader"}
    good = Role("deleter", {Level.GLOBAL: (Permission("compute:clusters", frozenset({"delete"})),)})
    newer = policy.with_role(good)
    assert (newer.version, policy.version) == (2, 1)
    assert set(newer.roles) == {"reader", "deleter"}
    assert newer.without_role("deleter").version == 3


def test_policy_when_resource_type_loses_used_action_refuses() -> None:
    from watchword.authz import ResourceType

    policy = parse_policy(BASE)
    with pytest.raises(UnknownAction):
        # "read" is used by the reader role through "*"; no type would define it any more
        Policy.build(
            policy.registry.with_type(ResourceType("compute:clusters", frozenset({"delete"}))),
            policy.roles.values(),
        )


def test_an_unknown_role_raises_when_a_check_needs_it_or_on_validate() -> None:
    policy = parse_policy(BASE)
    subject = parse_subject(
        {"issuer": "https://i", "id": "a", "organizations": {"o": ["ghost"], "p": ["reader"]}}
    )
    compiled = compile_subject(policy, subject)  # O(1): nothing resolved yet
    assert check(compiled, "read", Object("compute:clusters", "x", "p")).allowed
    with pytest.raises(UnknownRole):
        check(compiled, "read", Object("compute:clusters", "y", "o"))
    with pytest.raises(UnknownRole):
        compile_subject(policy, subject).validate()


def test_parse_subject_when_round_tripped_is_equal() -> None:
    doc = {
        "issuer": "https://id.example.com",
        "id": "svc-1",
        "account_type": "service",
        "global_roles": ["reader"],
        "organizations": {"acme": ["reader"]},
        "projects": {"p1": {"organization": "acme", "roles": ["reader"]}},
        "groups": ["sre"],
        "scope": {"names": ["compute:clusters:read"], "allow_list": [{"type": "*", "id": "*"}]},
    }
    subject = parse_subject(doc)
    assert subject.key == "https://id.example.com|svc-1"
    assert parse_subject(subject.to_dict()) == subject
    assert subject.to_dict() == doc


def test_parse_subject_when_issuer_has_separator_refuses() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_subject({"issuer": "a|b", "id": "x"})
    assert info.value.pointer == "/issuer"


def test_parse_object_when_round_tripped_is_equal() -> None:
    doc = {
        "type": "compute:clusters",
        "id": "c1",
        "org_id": "acme",
        "project_id": None,
        "owner": "https://i|a",
        "acl": {"users": {"https://i|b": ["read"]}, "groups": {"sre": ["*"]}},
    }
    obj = parse_object(doc)
    assert obj.to_dict() == doc
    with pytest.raises(InvalidInput) as info:
        parse_object({**doc, "acl": {"users": {"k": "read"}}}, "/objects/x")
    assert info.value.pointer == "/objects/x/acl/users/k"


def test_role_when_round_tripped_through_dict_is_equal() -> None:
    role = Role(
        "r",
        {
            Level.ORGANIZATION: (Permission("*", frozenset({"*"})),),
            Level.OWNER: (Permission("compute:clusters", frozenset({"delete"}), Effect.DENY),),
        },
    )
    assert parse_role(role.to_dict()) == role


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"account_type": ["user"]}, "/account_type"),  # unhashable: still a clear refusal
        ({"account_type": "robot"}, "/account_type"),
        ({"organizations": None}, "/organizations"),
        ({"projects": None}, "/projects"),
        ({"organizations": ["o"]}, "/organizations"),
        ({"extra": 1}, "/extra"),
    ],
)
def test_parse_subject_refuses_what_it_always_refused_with_the_same_pointer(
    change: dict[str, object], pointer: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_subject({"issuer": "https://i", "id": "a", **change})
    assert info.value.pointer == pointer


def test_an_unknown_role_beside_a_deny_is_refused_not_remembered_as_the_deny() -> None:
    policy = parse_policy(
        with_role(
            {
                "name": "a-denier",
                "permissions": {
                    "organization": [{"resource_type": "*", "actions": ["read"], "effect": "deny"}]
                },
            }
        )
    )
    doc = {"issuer": "https://i", "id": "a", "organizations": {"o": ["a-denier", "zz-ghost"]}}
    obj = Object("compute:clusters", "x", "o")
    for _ in range(2):  # the first refusal is not memoized as a deny
        with pytest.raises(UnknownRole):
            check(compile_subject(policy, parse_subject(doc)), "read", obj)


def test_ids_of_other_organizations_are_remembered_only_when_short() -> None:
    policy = parse_policy(BASE)
    orgs = {f"o{i}": ["reader"] for i in range(5)}
    compiled = compile_subject(
        policy, parse_subject({"issuer": "https://i", "id": "a", "organizations": orgs})
    )
    assert check(compiled, "read", Object("compute:clusters", "x", "o0")).allowed
    long_id, short_id = "x" * 10_000, "elsewhere"
    assert not check(compiled, "read", Object("compute:clusters", "y", long_id)).allowed
    assert not check(compiled, "read", Object("compute:clusters", "z", short_id)).allowed
    level = compiled.table("compute:clusters", "read").org_level
    assert level.open and short_id in level.seen and long_id not in level.seen


def test_a_level_asked_about_more_foreign_ids_than_memberships_decides_them_all() -> None:
    """Completion: every membership decided at once, the seen ids dropped, and a foreign
    id then a plain miss; the answers do not change."""
    policy = parse_policy(BASE)
    orgs = {"o0": ["reader"], "o1": ["reader"], "o2": ["reader"]}
    compiled = compile_subject(
        policy, parse_subject({"issuer": "https://i", "id": "a", "organizations": orgs})
    )
    table = compiled.table("compute:clusters", "read")
    for i in range(3):  # as many foreign ids as memberships: still open
        assert not check(compiled, "read", Object("compute:clusters", f"f{i}", f"x{i}")).allowed
    assert table.open and table.org == {}
    assert not check(compiled, "read", Object("compute:clusters", "f3", "x3")).allowed
    assert not table.org_level.open and not table.org_level.seen
    assert set(table.org) == {"o0", "o1", "o2"}
    assert check(compiled, "read", Object("compute:clusters", "c", "o2")).allowed
    assert not check(compiled, "read", Object("compute:clusters", "c", "x0")).allowed


def test_completion_does_not_raise_for_a_role_an_unrelated_check_does_not_need() -> None:
    policy = parse_policy(BASE)
    doc = {"issuer": "https://i", "id": "a", "organizations": {"o0": ["reader"], "o1": ["ghost"]}}
    compiled = compile_subject(policy, parse_subject(doc))
    for i in range(5):  # past the foreign-id trigger: completion fails on "ghost", stays open
        assert not check(compiled, "read", Object("compute:clusters", f"f{i}", f"x{i}")).allowed
    assert compiled.table("compute:clusters", "read").org_level.open
    assert check(compiled, "read", Object("compute:clusters", "c", "o0")).allowed
    with pytest.raises(UnknownRole):
        check(compiled, "read", Object("compute:clusters", "c", "o1"))
