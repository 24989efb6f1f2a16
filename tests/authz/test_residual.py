"""Residual predicates: size, simplification, JSON form, generated Python, filter."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchword.authz import (
    FALSE,
    TRUE,
    AclHas,
    AclKind,
    And,
    Eq,
    Field,
    In,
    IsNull,
    Node,
    Not,
    Object,
    Or,
    ProjectMembership,
    Subject,
    compile_subject,
    filter_objects,
    node_count,
    parse_policy,
    prepare,
    residual_from_dict,
    residual_to_dict,
)
from watchword.authz.residual import (
    all_of,
    any_of,
    compile_filter,
    compile_predicate,
    evaluate_residual,
    is_in,
    negate,
)
from watchword.errors import InvalidInput, UnsupportedPredicate

POLICY = parse_policy(
    {
        "resource_types": [{"name": "t", "actions": ["read", "delete"]}],
        "roles": [
            {
                "name": "admin",
                "permissions": {"organization": [{"resource_type": "*", "actions": ["*"]}]},
            },
            {
                "name": "member",
                "permissions": {
                    "organization": [{"resource_type": "t", "actions": ["read"]}],
                    "owner": [{"resource_type": "t", "actions": ["*"]}],
                },
            },
            {
                "name": "no-delete",
                "permissions": {
                    "organization": [
                        {"resource_type": "t", "actions": ["delete"], "effect": "deny"}
                    ]
                },
            },
        ],
    }
)
CYCLE = (frozenset({"member"}), frozenset({"admin"}), frozenset({"member", "no-delete"}))


def subject_in(n: int) -> Subject:
    orgs = {f"o{i}": CYCLE[i % 3] for i in range(max(n, 3))}
    if n < 3:  # same role mix, fewer organizations
        orgs = {"o0": frozenset({"member", "no-delete"}), "o1": frozenset({"admin"})}
    return Subject("https://i", "me", organizations=orgs, groups=frozenset({"g"}))


@pytest.mark.parametrize("action", ["read", "delete"])
def test_prepare_when_orgs_grow_from_2_to_1000_node_count_is_equal(action: str) -> None:
    small = prepare(compile_subject(POLICY, subject_in(2)), action, "t")
    large = prepare(compile_subject(POLICY, subject_in(1000)), action, "t")
    assert small.node_count == large.node_count
    assert residual_to_dict(small.residual).keys() == residual_to_dict(large.residual).keys()
    in_nodes = [n for n in _walk(large.residual) if isinstance(n, In)]
    assert max(len(n.values) for n in in_nodes) >= 300  # the orgs live in the leaves


def _walk(node: Node) -> list[Node]:
    if isinstance(node, And | Or):
        return [node, *(m for n in node.items for m in _walk(n))]
    if isinstance(node, Not):
        return [node, *_walk(node.item)]
    return [node]


def test_constructors_when_given_constants_fold_them_away() -> None:
    leaf = Eq(Field.OWNER, "x")
    assert all_of(TRUE, leaf, TRUE) == leaf
    assert all_of(leaf, FALSE) == FALSE
    assert any_of(FALSE, leaf) == leaf
    assert any_of(leaf, TRUE) == TRUE
    assert negate(negate(leaf)) == leaf
    assert is_in(Field.ORG_ID, []) == FALSE
    assert all_of(all_of(leaf, IsNull(Field.ID)), leaf) == And((leaf, IsNull(Field.ID), leaf))
    assert node_count(any_of(leaf, all_of(leaf, negate(leaf)))) == 6


def test_residual_from_dict_when_operator_or_field_unknown_raises_with_pointer() -> None:
    with pytest.raises(UnsupportedPredicate) as info:
        residual_from_dict({"op": "and", "args": [{"op": "regex", "field": "id"}]})
    assert info.value.pointer == "/args/0/op"
    with pytest.raises(UnsupportedPredicate) as info:
        residual_from_dict({"op": "in", "field": "email", "values": ["a"]})
    assert info.value.pointer == "/field"
    with pytest.raises(InvalidInput):
        residual_from_dict(["not", "an", "object"])


FIELDS = st.sampled_from(list(Field))
TEXT = st.text(min_size=1, max_size=6)
LEAVES: st.SearchStrategy[Node] = st.one_of(
    st.builds(In, FIELDS, st.frozensets(TEXT, min_size=1, max_size=3)),
    st.builds(Eq, FIELDS, TEXT),
    st.builds(IsNull, FIELDS),
    st.builds(
        AclHas, st.sampled_from(list(AclKind)), st.frozensets(TEXT, min_size=1, max_size=2), TEXT
    ),
)
TREES: st.SearchStrategy[Node] = st.recursive(
    LEAVES,
    lambda kids: st.one_of(
        st.builds(lambda xs: all_of(*xs), st.lists(kids, min_size=2, max_size=3)),
        st.builds(lambda xs: any_of(*xs), st.lists(kids, min_size=2, max_size=3)),
        st.builds(negate, kids),
    ),
    max_leaves=8,
)
OBJECTS = st.builds(
    Object,
    type=st.just("t"),
    id=TEXT,
    org_id=st.none() | TEXT,
    project_id=st.none() | TEXT,
    owner=st.none() | TEXT,
    acl_users=st.dictionaries(TEXT, st.frozensets(TEXT | st.just("*"), max_size=2), max_size=2),
    acl_groups=st.dictionaries(TEXT, st.frozensets(TEXT | st.just("*"), max_size=2), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(TREES, st.lists(OBJECTS, max_size=5))
def test_compile_predicate_when_random_tree_agrees_with_interpreter_and_json(
    tree: Node, objects: list[Object]
) -> None:
    # Values are arbitrary text (quotes, newlines, code-like strings): they are bound by
    # name in the generated function, never pasted into its source.
    assert residual_from_dict(residual_to_dict(tree)) == tree
    predicate = compile_predicate(tree)
    for obj in objects:
        assert predicate(obj) == evaluate_residual(tree, obj)


def test_compile_predicate_when_values_look_like_code_treats_them_as_data() -> None:
    hostile = "x') or True or ('"
    predicate = compile_predicate(Eq(Field.ID, hostile))
    assert predicate(Object("t", hostile))
    assert not predicate(Object("t", "x"))


class _HostileField:
    """Not a Field: its ``value`` is Python source, as a hand-built node could carry."""

    value = "id if __import__('os').environ.setdefault('WW_PWNED', '1') else id"


@pytest.mark.parametrize(
    "node",
    [
        Eq(_HostileField(), "x"),  # type: ignore[arg-type]
        In(_HostileField(), frozenset({"x"})),  # type: ignore[arg-type]
        IsNull(_HostileField()),  # type: ignore[arg-type]
        AclHas(_HostileField(), frozenset({"k"}), "read"),  # type: ignore[arg-type]
        Not(Eq(_HostileField(), "x")),  # type: ignore[arg-type]
    ],
)
def test_compile_predicate_when_node_field_is_not_an_enum_member_raises(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WW_PWNED", raising=False)
    with pytest.raises(UnsupportedPredicate):
        compile_predicate(node)
    with pytest.raises(UnsupportedPredicate):
        compile_filter(node, "t")
    assert "WW_PWNED" not in os.environ


def test_filter_when_a_type_is_unknown_raises_for_small_and_large_lists() -> None:
    c = compile_subject(POLICY, subject_in(3))
    objs = [Object("t", f"x{i}", "o1") for i in range(30)] + [Object("u", "y")]
    for prepare_from in (1000, 1):
        with pytest.raises(InvalidInput, match="'u' is not registered"):
            filter_objects(c, "read", objs, prepare_from=prepare_from)
    p = prepare(c, "read", "t")
    with pytest.raises(InvalidInput, match="prepared for type 't'"):
        p.matches(Object("u", "y"))
    with pytest.raises(InvalidInput, match="all objects must be of type 't'"):
        p.filter(objs)


def test_filter_when_list_is_small_or_large_keeps_the_same_objects() -> None:
    c = compile_subject(POLICY, subject_in(3))
    objs = [
        Object("t", f"x{i}", f"o{i % 5}", owner="https://i|me" if i % 2 else None)
        for i in range(40)
    ]
    expected = [o for o in objs if prepare(c, "delete", "t").matches(o)]
    assert filter_objects(c, "delete", objs) == expected  # one by one
    assert filter_objects(c, "delete", objs, prepare_from=10) == expected  # prepared
    assert filter_objects(c, "delete", objs[:5]) == [o for o in expected if o in objs[:5]]
    assert filter_objects(c, "delete", []) == []
    assert {o.org_id for o in expected} == {"o0", "o1"}


def test_prepare_project_level_allow_outside_the_subjects_organizations_matches() -> None:
    """A project role alone (no membership of the project's organization) allows at the project
    level: check, prepare and filter agree on it, and a project deny beats an owner allow."""
    policy = parse_policy(
        {
            "resource_types": [{"name": "t", "actions": ["read"]}],
            "roles": [
                {
                    "name": "viewer",
                    "permissions": {"project": [{"resource_type": "t", "actions": ["read"]}]},
                },
                {
                    "name": "blocked",
                    "permissions": {
                        "project": [{"resource_type": "t", "actions": ["read"], "effect": "deny"}]
                    },
                },
                {
                    "name": "owner-reads",
                    "permissions": {"owner": [{"resource_type": "t", "actions": ["read"]}]},
                },
            ],
        }
    )
    subject = Subject(
        "https://i",
        "me",
        global_roles=frozenset({"owner-reads"}),
        projects={
            "p1": ProjectMembership("o9", frozenset({"viewer"})),
            "p2": ProjectMembership("o9", frozenset({"blocked"})),
        },
    )
    compiled = compile_subject(policy, subject)
    seen = Object("t", "seen", org_id="o9", project_id="p1")
    hidden = Object("t", "hidden", org_id="o9", project_id="p2", owner=subject.key)
    other = Object("t", "other", org_id="o9", project_id="p3")
    prepared = prepare(compiled, "read", "t")
    from watchword.authz import check

    for obj, expected in ((seen, True), (hidden, False), (other, False)):
        assert check(compiled, "read", obj).allowed is expected, obj.id
        assert prepared.matches(obj) is expected, obj.id
    assert prepared.filter([seen, hidden, other]) == [seen]
