"""One vocabulary for a subject: the Python value's fields are the document's names and shape
(``organizations``, ``projects`` of :class:`ProjectMembership`); the former Python names
(``org_roles``, ``project_roles``, ``project_orgs``) are refused, naming the new ones."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from watchword.authz import (
    AccountType,
    Object,
    ProjectMembership,
    Subject,
    TokenScope,
    check,
    compile_subject,
    explain,
    parse_policy,
    parse_subject,
)
from watchword.errors import InvalidInput

OLD_NAMES = ("org_roles", "project_roles", "project_orgs")

DOC: dict[str, object] = {
    "issuer": "https://id.example.com",
    "id": "svc-1",
    "account_type": "service",
    "global_roles": ["auditor"],
    "organizations": {"acme": ["reader"], "globex": ["admin", "reader"]},
    "projects": {
        "web": {"organization": "acme", "roles": ["editor"]},
        "loose": {"organization": None, "roles": ["reader"]},
    },
    "groups": ["sre"],
    "scope": {"names": ["compute:clusters:read"], "allow_list": [{"type": "*", "id": "*"}]},
}

PYTHON = Subject(
    issuer="https://id.example.com",
    id="svc-1",
    account_type=AccountType.SERVICE,
    global_roles=frozenset({"auditor"}),
    organizations={"acme": frozenset({"reader"}), "globex": frozenset({"admin", "reader"})},
    projects={
        "web": ProjectMembership(organization="acme", roles=frozenset({"editor"})),
        "loose": ProjectMembership(organization=None, roles=frozenset({"reader"})),
    },
    groups=frozenset({"sre"}),
    scope=TokenScope(frozenset({"compute:clusters:read"})),
)


def test_subject_fields_are_the_documents_in_the_documents_order() -> None:
    names = [f.name for f in dataclasses.fields(Subject)]
    assert names == [
        "issuer",
        "id",
        "account_type",
        "global_roles",
        "organizations",
        "projects",
        "groups",
        "scope",
    ]
    assert names == list(PYTHON.to_dict())


def test_parsed_document_equals_the_subject_built_in_python_and_round_trips() -> None:
    parsed = parse_subject(DOC)
    assert parsed == PYTHON
    assert parsed.to_dict() == DOC
    assert PYTHON.to_dict() == DOC
    assert parse_subject(PYTHON.to_dict()) == PYTHON
    assert parsed.projects["web"] == ProjectMembership("acme", frozenset({"editor"}))
    assert parsed.projects["loose"].organization is None
    assert parsed.organizations["globex"] == {"admin", "reader"}
    assert parsed.role_count() == PYTHON.role_count() == 1 + 3 + 2


def test_project_membership_is_a_frozen_hashable_value() -> None:
    m = ProjectMembership("acme", frozenset({"editor"}))
    assert m == ProjectMembership("acme", frozenset({"editor"}))
    assert hash(m) == hash(ProjectMembership("acme", frozenset({"editor"})))
    assert m.to_dict() == {"organization": "acme", "roles": ["editor"]}
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.roles = frozenset()  # type: ignore[misc]
    assert not hasattr(m, "__dict__")  # slots


def test_subject_stays_immutable_and_replace_keeps_working() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PYTHON.organizations = {}  # type: ignore[misc]
    assert not hasattr(PYTHON, "__dict__")  # slots
    moved = dataclasses.replace(PYTHON, id="svc-2")
    assert (moved.id, moved.projects) == ("svc-2", PYTHON.projects)
    assert Subject("https://i", "a") == Subject("https://i", "a", organizations={}, projects={})
    assert dict(Subject("https://i", "a").projects) == {}
    with pytest.raises(InvalidInput) as info:
        Subject("https://i|x", "a")
    assert info.value.pointer == "/issuer"


@pytest.mark.parametrize("name", OLD_NAMES)
def test_old_keyword_names_raise_type_error_naming_the_new_ones(name: str) -> None:
    kwargs: dict[str, Any] = {name: {}}
    with pytest.raises(TypeError) as info:
        Subject("https://i", "a", **kwargs)
    message = str(info.value)
    assert repr(name) in message
    assert "organizations=" in message
    assert "projects={id: ProjectMembership(organization, roles)}" in message


def test_other_unknown_keywords_raise_the_usual_type_error() -> None:
    kwargs: dict[str, Any] = {"orgs": {}}
    with pytest.raises(TypeError, match="unexpected keyword argument 'orgs'") as info:
        Subject("https://i", "a", **kwargs)
    assert "ProjectMembership" not in str(info.value)


@pytest.mark.parametrize("name", OLD_NAMES)
def test_old_attribute_names_raise_attribute_error_naming_the_new_ones(name: str) -> None:
    for subject in (PYTHON, parse_subject(DOC)):
        with pytest.raises(AttributeError) as info:
            getattr(subject, name)
        message = str(info.value)
        assert repr(name) in message
        assert "subject.organizations" in message
        assert "ProjectMembership(organization, roles)" in message
        assert info.value.name == name
        assert not hasattr(subject, name)


def test_other_missing_attributes_raise_the_usual_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"^'Subject' object has no attribute 'orgs'$"):
        PYTHON.orgs  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.parametrize(
    ("name", "new"),
    [("org_roles", "organizations"), ("project_roles", "projects"), ("project_orgs", "projects")],
)
def test_parse_subject_refuses_the_old_keys_naming_the_new_one(name: str, new: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_subject({"issuer": "https://i", "id": "a", name: {}})
    assert info.value.pointer == f"/{name}"
    assert info.value.detail == f"unknown field {name!r}; use {new!r}"
    with pytest.raises(InvalidInput) as info:
        parse_subject({"issuer": "https://i", "id": "a", name: {}}, "/subject")
    assert info.value.pointer == f"/subject/{name}"


def test_parse_subject_projects_are_checked_per_entry_on_first_read() -> None:
    doc = {
        "issuer": "https://i",
        "id": "a",
        "projects": {
            "good": {"organization": "o", "roles": ["reader"]},
            "bad": {"organization": "o", "roles": "reader"},
            "worse": {"org": "o"},
        },
    }
    subject = parse_subject(doc, "/subject")  # nothing read yet: no error
    assert len(subject.projects) == 3 and "bad" in subject.projects
    assert subject.projects["good"] == ProjectMembership("o", frozenset({"reader"}))
    assert subject.projects.get("missing") is None
    with pytest.raises(KeyError):
        subject.projects["missing"]
    with pytest.raises(InvalidInput) as info:
        subject.projects.get("bad")
    assert info.value.pointer == "/subject/projects/bad/roles"
    with pytest.raises(InvalidInput) as info:
        subject.projects["worse"]
    assert info.value.pointer == "/subject/projects/worse/org"
    with pytest.raises(InvalidInput):
        subject.to_dict()  # walking every entry checks them all


def test_a_parsed_subjects_project_roles_decide_at_project_level() -> None:
    policy = parse_policy(
        {
            "resource_types": [{"name": "t", "actions": ["read", "delete"]}],
            "roles": [
                {
                    "name": "reader",
                    "permissions": {"project": [{"resource_type": "t", "actions": ["read"]}]},
                },
                {
                    "name": "owner-deleter",
                    "permissions": {"owner": [{"resource_type": "t", "actions": ["delete"]}]},
                },
            ],
        }
    )
    for subject in (
        parse_subject(
            {
                "issuer": "https://i",
                "id": "a",
                "projects": {"p1": {"organization": "o", "roles": ["reader", "owner-deleter"]}},
            }
        ),
        Subject(
            "https://i",
            "a",
            projects={"p1": ProjectMembership("o", frozenset({"reader", "owner-deleter"}))},
        ),
    ):
        compiled = compile_subject(policy, subject)
        assert check(compiled, "read", Object("t", "x", "o", "p1")).allowed
        assert not check(compiled, "read", Object("t", "x", "o", "p2")).allowed
        assert check(compiled, "delete", Object("t", "x", "o", "p1", owner=subject.key)).allowed
        assert not check(compiled, "delete", Object("t", "x", "o", "p1")).allowed
        assert compiled.validate() is compiled
        assert compiled.role_count == 2
        report = explain(compiled, "read", Object("t", "x", "o", "p1"))
        assert any("roles in project 'p1'" in stage.note for stage in report.stages)
