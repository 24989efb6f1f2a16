"""Explain a decision: every stage's verdict, what matched, and the token scope's part.

This walks the roles directly (not the compiled tables), so it is slower than
:func:`~watchword.authz.evaluate.check` but independent of the fast path; its
``decision`` equals ``check``'s for the same question (a property the tests hold).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from watchword.authz.compile import CompiledSubject, Vote, level_vote
from watchword.authz.evaluate import check
from watchword.authz.model import WILDCARD, DecidedBy, Decision, Effect, Level, Object, Permission

__all__ = ["Explanation", "Match", "ScopeReport", "StageReport", "Verdict", "explain"]


class Verdict(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    ABSTAIN = "abstain"
    NOT_REACHED = "not_reached"


@dataclass(frozen=True, slots=True)
class Match:
    """A permission (or ACL entry, ``role=None``) that matched the question."""

    source: str
    role: str | None
    permission: Permission | None

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "role": self.role,
            "permission": None if self.permission is None else self.permission.to_dict(),
        }

    def __str__(self) -> str:
        if self.role is None:
            return self.source
        return f"{self.source}: role {self.role!r} {self.permission}"


@dataclass(frozen=True, slots=True)
class StageReport:
    stage: DecidedBy
    verdict: Verdict
    matches: tuple[Match, ...]
    note: str

    def to_dict(self) -> dict[str, object]:
        return {
            "stage": self.stage.value,
            "verdict": self.verdict.value,
            "matches": [m.to_dict() for m in self.matches],
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class ScopeReport:
    present: bool
    names_allowed: bool
    allow_list_allowed: bool

    @property
    def allowed(self) -> bool:
        return self.names_allowed and self.allow_list_allowed

    def to_dict(self) -> dict[str, object]:
        return {
            "present": self.present,
            "names_allowed": self.names_allowed,
            "allow_list_allowed": self.allow_list_allowed,
            "allowed": self.allowed,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    subject_key: str
    action: str
    object_type: str
    object_id: str
    decision: Decision
    stages: tuple[StageReport, ...]
    scope: ScopeReport

    def to_dict(self) -> dict[str, object]:
        return {
            "subject": self.subject_key,
            "action": self.action,
            "object": {"type": self.object_type, "id": self.object_id},
            "decision": self.decision.to_dict(),
            "stages": [s.to_dict() for s in self.stages],
            "scope": self.scope.to_dict(),
        }

    def to_text(self) -> str:
        d = self.decision
        head = "ALLOW" if d.allowed else "DENY"
        lines = [
            f"{head}: {self.subject_key} {self.action} {self.object_type}/{self.object_id}",
            f"  decided by: {d.decided_by.value}"
            + (f" (role {d.role!r}: {d.permission})" if d.role else "")
            + (f" ({d.acl_entry})" if d.acl_entry else ""),
        ]
        for s in self.stages:
            lines.append(f"  {s.stage.value:<13}{s.verdict.value:<12}{s.note}")
            lines.extend(f"      - {m}" for m in s.matches)
        sc = self.scope
        if not sc.present:
            lines.append("  scope        no token scope (unrestricted)")
        else:
            lines.append(
                f"  scope        names {'allow' if sc.names_allowed else 'do not allow'} "
                f"{self.object_type}:{self.action}; allow-list "
                f"{'holds' if sc.allow_list_allowed else 'does not hold'} "
                f"({self.object_type}, {self.object_id})"
            )
        if not d.allowed and d.decided_by is DecidedBy.NOTHING:
            lines.append("  why: no role, ownership or ACL entry grants this; the default is deny")
        elif not d.allowed and d.scope_allowed is False:
            lines.append("  why: the roles allow it but the token scope does not")
        return "\n".join(lines)


def _matches(
    compiled: CompiledSubject, source: str, names: Iterable[str], level: Level, q: tuple[str, str]
) -> list[Match]:
    t, a = q
    policy = compiled.policy
    return [
        Match(source, name, perm)
        for name in sorted(names)
        for perm in policy.role(name).block(level)
        if perm.matches(t, a)
    ]


def _verdict(vote: Vote | None) -> Verdict:
    if vote is None:
        return Verdict.ABSTAIN
    return Verdict.ALLOW if vote.effect is Effect.ALLOW else Verdict.DENY


def _stages(compiled: CompiledSubject, action: str, obj: Object) -> list[StageReport]:
    policy = compiled.policy
    subject = compiled.subject
    t = obj.type
    reports: list[StageReport] = []

    g_names = subject.global_roles
    reports.append(
        StageReport(
            DecidedBy.GLOBAL,
            _verdict(level_vote(policy, g_names, Level.GLOBAL, t, action)),
            tuple(_matches(compiled, "global", g_names, Level.GLOBAL, (t, action))),
            f"global roles: {', '.join(sorted(g_names)) or 'none'}",
        )
    )

    org_names = subject.organizations.get(obj.org_id, frozenset()) if obj.org_id else frozenset()
    if obj.org_id is None:
        note = "object has no organization"
    elif not org_names:
        note = f"subject holds no roles in organization {obj.org_id!r}"
    else:
        note = f"roles in organization {obj.org_id!r}: {', '.join(sorted(org_names))}"
    reports.append(
        StageReport(
            DecidedBy.ORGANIZATION,
            _verdict(level_vote(policy, org_names, Level.ORGANIZATION, t, action)),
            tuple(
                _matches(compiled, f"org {obj.org_id}", org_names, Level.ORGANIZATION, (t, action))
            ),
            note,
        )
    )

    prj = obj.project_id
    prj_names = subject.projects[prj].roles if prj and prj in subject.projects else frozenset()
    if prj is None:
        note = "object has no project"
    elif not prj_names:
        note = f"subject holds no roles in project {prj!r}"
    else:
        note = f"roles in project {prj!r}: {', '.join(sorted(prj_names))}"
    reports.append(
        StageReport(
            DecidedBy.PROJECT,
            _verdict(level_vote(policy, prj_names, Level.PROJECT, t, action)),
            tuple(_matches(compiled, f"project {prj}", prj_names, Level.PROJECT, (t, action))),
            note,
        )
    )

    if obj.owner != compiled.key:
        owner_verdict, owner_matches = Verdict.ABSTAIN, []
        note = "object owner is not the subject" if obj.owner else "object has no owner"
    else:
        sources = (
            ("global", g_names),
            (f"org {obj.org_id}", org_names),
            (f"project {prj}", prj_names),
        )
        votes = [level_vote(policy, names, Level.OWNER, t, action) for _, names in sources]
        owner_matches = [
            m
            for src, names in sources
            for m in _matches(compiled, src, names, Level.OWNER, (t, action))
        ]
        if any(v is not None and v.effect is Effect.DENY for v in votes):
            owner_verdict = Verdict.DENY
        elif any(v is not None for v in votes):
            owner_verdict = Verdict.ALLOW
        else:
            owner_verdict = Verdict.ABSTAIN
        note = "subject owns the object; owner blocks of its global, org and project roles"
    reports.append(StageReport(DecidedBy.OWNER, owner_verdict, tuple(owner_matches), note))

    acl_matches: list[Match] = []
    user_actions = obj.acl_users.get(compiled.key)
    if user_actions is not None and (action in user_actions or WILDCARD in user_actions):
        acl_matches.append(Match(f"user:{compiled.key}", None, None))
    for group, actions in obj.acl_groups.items():
        if group in subject.groups and (action in actions or WILDCARD in actions):
            acl_matches.append(Match(f"group:{group}", None, None))
    reports.append(
        StageReport(
            DecidedBy.ACL,
            Verdict.ALLOW if acl_matches else Verdict.ABSTAIN,
            tuple(acl_matches),
            f"{obj.acl_entry_count()} ACL entries on the object",
        )
    )

    decided = False
    for i, report in enumerate(reports):
        if decided:
            reports[i] = StageReport(
                report.stage, Verdict.NOT_REACHED, report.matches, "a higher stage decided"
            )
        elif report.verdict is not Verdict.ABSTAIN:
            decided = True
    return reports


def explain(compiled: CompiledSubject, action: str, obj: Object) -> Explanation:
    """Every stage's verdict for ``action`` on ``obj``, and the decision :func:`check` gives."""
    decision = check(compiled, action, obj)  # also validates the type and action
    scope = compiled.subject.scope
    if scope is None:
        scope_report = ScopeReport(present=False, names_allowed=True, allow_list_allowed=True)
    else:
        scope_report = ScopeReport(
            present=True,
            names_allowed=scope.allows_name(obj.type, action),
            allow_list_allowed=scope.allows_any_id(obj.type)
            or obj.id in scope.allowed_ids(obj.type),
        )
    return Explanation(
        subject_key=compiled.key,
        action=action,
        object_type=obj.type,
        object_id=obj.id,
        decision=decision,
        stages=tuple(_stages(compiled, action, obj)),
        scope=scope_report,
    )
