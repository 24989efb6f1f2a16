"""Policy tests as a library: a YAML document of roles, subjects, objects and expected answers.

``watchword policy test FILE`` reads the file and calls :func:`run_policy_test_text`; a
non-empty ``failures`` means a non-zero exit. Document shape::

    resource_types: [{name: compute:clusters, actions: [create, read, update, delete]}]
    roles: [{name: org-admin, permissions: {organization: [{resource_type: "*", actions: ["*"]}]}}]
    subjects:
      alice: {issuer: https://id.example.com, id: alice, organizations: {org-1: [org-admin]}}
    objects: {cluster-1: {type: compute:clusters, id: c1, org_id: org-1}}
    cases:
      - {subject: alice, action: delete, object: cluster-1, expect: allow}

Objects may be given inline in a case instead of by name. Errors in the document raise
:class:`~watchword.errors.InvalidInput` with a pointer into it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import yaml

from watchword.authz.compile import CompiledSubject, compile_subject
from watchword.authz.explain import Explanation, explain
from watchword.authz.model import Object
from watchword.authz.parse import parse_object, parse_policy, parse_subject
from watchword.errors import InvalidInput

__all__ = ["CaseResult", "PolicyTestReport", "run_policy_test", "run_policy_test_text"]


@dataclass(frozen=True, slots=True)
class CaseResult:
    index: int
    name: str
    subject: str
    action: str
    object_ref: str
    expected: bool
    explanation: Explanation

    @property
    def got(self) -> bool:
        return self.explanation.decision.allowed

    @property
    def passed(self) -> bool:
        return self.got == self.expected

    def diff(self) -> str:
        def word(b: bool) -> str:
            return "allow" if b else "deny"

        head = (
            f"case {self.index} ({self.name}): {self.subject} {self.action} {self.object_ref}\n"
            f"  expected: {word(self.expected)}\n"
            f"  got:      {word(self.got)}\n"
        )
        body = "\n".join("  " + line for line in self.explanation.to_text().splitlines())
        return head + body

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "name": self.name,
            "subject": self.subject,
            "action": self.action,
            "object": self.object_ref,
            "expected": "allow" if self.expected else "deny",
            "got": "allow" if self.got else "deny",
            "passed": self.passed,
            "explanation": self.explanation.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class PolicyTestReport:
    results: tuple[CaseResult, ...]

    @property
    def failures(self) -> tuple[CaseResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_text(self) -> str:
        lines = [r.diff() + "\n" for r in self.failures]
        passed = len(self.results) - len(self.failures)
        lines.append(f"{passed} passed, {len(self.failures)} failed")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {
            "passed": len(self.results) - len(self.failures),
            "failed": len(self.failures),
            "results": [r.to_dict() for r in self.results],
        }


def _mapping(value: object, pointer: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise InvalidInput("expected a mapping", pointer=pointer)
    return value


def run_policy_test(document: object) -> PolicyTestReport:
    """Run the cases of an already-parsed document (e.g. ``yaml.safe_load`` output)."""
    doc = _mapping(document, "/")
    policy = parse_policy({k: doc[k] for k in ("resource_types", "roles") if k in doc})
    subjects: dict[str, CompiledSubject] = {}
    for name, data in _mapping(doc.get("subjects", {}), "/subjects").items():
        subject = parse_subject(data, f"/subjects/{name}")
        try:
            # A policy test is a review of the whole document: every entry and role name now.
            subjects[name] = compile_subject(policy, subject).validate()
        except InvalidInput as exc:
            if not (exc.pointer or "").startswith(f"/subjects/{name}/"):
                exc.pointer = f"/subjects/{name}"  # an unknown role: the subject names it
            raise
    objects: dict[str, Object] = {
        name: parse_object(data, f"/objects/{name}")
        for name, data in _mapping(doc.get("objects", {}), "/objects").items()
    }
    cases = doc.get("cases")
    if not isinstance(cases, list) or not cases:
        raise InvalidInput("'cases' must be a non-empty list", pointer="/cases")
    results = []
    for i, raw in enumerate(cases):
        at = f"/cases/{i}"
        case = _mapping(raw, at)
        subject_name = case.get("subject")
        if not isinstance(subject_name, str) or subject_name not in subjects:
            raise InvalidInput(
                "'subject' must name an entry of 'subjects'", pointer=f"{at}/subject"
            )
        action = case.get("action")
        if not isinstance(action, str) or not action:
            raise InvalidInput("'action' must be a non-empty string", pointer=f"{at}/action")
        ref = case.get("object")
        if isinstance(ref, str):
            if ref not in objects:
                raise InvalidInput(
                    "'object' must name an entry of 'objects'", pointer=f"{at}/object"
                )
            obj, object_ref = objects[ref], ref
        else:
            obj = parse_object(ref, f"{at}/object")
            object_ref = f"{obj.type}/{obj.id}"
        expect = case.get("expect")
        if expect not in ("allow", "deny"):
            raise InvalidInput("'expect' must be allow or deny", pointer=f"{at}/expect")
        try:
            why = explain(subjects[subject_name], action, obj)
        except InvalidInput as exc:
            exc.pointer = f"{at}/action" if "action" in exc.code else f"{at}/object"
            raise
        label = case.get("name")
        results.append(
            CaseResult(
                index=i,
                name=label if isinstance(label, str) else f"#{i}",
                subject=subject_name,
                action=action,
                object_ref=object_ref,
                expected=expect == "allow",
                explanation=why,
            )
        )
    return PolicyTestReport(tuple(results))


def run_policy_test_text(text: str) -> PolicyTestReport:
    """Parse YAML ``text`` and run it; malformed YAML raises InvalidInput."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise InvalidInput(f"the policy test file is not valid YAML{where}", pointer="/") from exc
    return run_policy_test(document)
