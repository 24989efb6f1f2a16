"""Policy tests as a library: the shipped example passes, failures read well, errors point."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchword.authz import run_policy_test_text
from watchword.errors import InvalidInput, UnknownAction

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "policy-test.yaml"


def test_policy_test_when_example_file_runs_passes_every_case() -> None:
    report = run_policy_test_text(EXAMPLE.read_text())
    assert report.ok
    assert len(report.results) == 11
    assert report.to_text().endswith("11 passed, 0 failed")


def test_policy_test_when_expectation_is_wrong_reports_diff_with_explanation() -> None:
    case = "{name: org deny beats owner allow, subject: bob, action: delete, object: acme-c2, "
    text = EXAMPLE.read_text().replace(case + "expect: deny}", case + "expect: allow}")
    report = run_policy_test_text(text)
    assert [f.name for f in report.failures] == ["org deny beats owner allow"]
    diff = report.failures[0].diff()
    assert "expected: allow" in diff
    assert "got:      deny" in diff
    assert "role 'no-delete'" in diff
    assert report.to_dict()["failed"] == 1


@pytest.mark.parametrize(
    ("text", "pointer"),
    [
        ("cases: [", "/"),
        ("- just a list", "/"),
        (
            "roles: [{name: r, permissions: {global: [{resource_type: x, actions: [read]}]}}]\n",
            "/roles/0/permissions/global/0/resource_type",
        ),
        (
            "subjects: {a: {issuer: i, id: a}}\n"
            "cases: [{subject: b, action: read, object: {type: t, id: x}, expect: allow}]\n",
            "/cases/0/subject",
        ),
        (
            "subjects: {a: {issuer: i, id: a}}\n"
            "cases: [{subject: a, action: read, object: {type: t, id: x}, expect: maybe}]\n",
            "/cases/0/expect",
        ),
        (
            "subjects: {a: {issuer: i, id: a, organizations: {o: [ghost]}}}\ncases: []\n",
            "/subjects/a",
        ),
        (
            "subjects: {a: {issuer: i, id: a, organizations: {o: [r, 5]}}}\ncases: []\n",
            "/subjects/a/organizations/o/1",
        ),
        (
            "subjects: {a: {issuer: i, id: a, projects: {p: {roles: [], bad: 1}}}}\ncases: []\n",
            "/subjects/a/projects/p/bad",
        ),
        ("cases: []\n", "/cases"),
    ],
)
def test_policy_test_when_document_is_malformed_raises_with_pointer(
    text: str, pointer: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        run_policy_test_text(text)
    assert info.value.pointer == pointer


def test_policy_test_when_case_uses_unknown_action_points_at_it() -> None:
    text = (
        "resource_types: [{name: t, actions: [read]}]\n"
        "subjects: {a: {issuer: i, id: a}}\n"
        "cases: [{subject: a, action: fly, object: {type: t, id: x}, expect: deny}]\n"
    )
    with pytest.raises(UnknownAction) as info:
        run_policy_test_text(text)
    assert info.value.pointer == "/cases/0/action"
