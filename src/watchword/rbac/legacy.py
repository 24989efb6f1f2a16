"""Migration from a user-database model: groups that reference local user records.

Pure. The export format (``docs/rbac.md``, example in ``docs/examples/legacy-groups.json``)::

    {"format": "watchword-legacy-groups/1",
     "users":  [{"id": "u-1", "email": "Alice@Example.com"}],
     "groups": [{"id": "grp-admins", "organizationId": "org_…", "name": "admins",
                 "userIds": ["u-1"], "roleIds": ["org-admin"], "projectIds": []}]}

Rules (seed 003's startup migration, made explicit and idempotent):

- A user record becomes the subject (watchword's issuer from configuration, lower-cased
  email as id); the email as written is kept for display.
- A group's subjects are filled **only where the group has none**; a group that already has
  subjects is left as it is, so running the import twice changes nothing the second time.
- The legacy field (``userIds``) is recorded on a group the import creates and never
  rewritten or removed afterwards.
- A user id with no record is reported (``unresolved``), never guessed.
- :func:`legacy_facts` resolves membership the legacy way (user ids → records → email), so
  a test can compare ACLs before and after the import.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from watchword.rbac.claims import Identity
from watchword.rbac.errors import LegacyExportInvalid
from watchword.rbac.model import GroupMember
from watchword.rbac.subject import GroupFacts, SubjectFacts

__all__ = [
    "FORMAT",
    "Change",
    "ChangeKind",
    "ExistingGroup",
    "LegacyExport",
    "LegacyGroup",
    "legacy_facts",
    "parse_export",
    "plan_import",
    "subject_id_for_email",
]

FORMAT = "watchword-legacy-groups/1"


@dataclass(frozen=True, slots=True)
class LegacyGroup:
    id: str
    organization_id: str
    name: str
    user_ids: tuple[str, ...]
    role_ids: tuple[str, ...]
    project_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LegacyExport:
    emails: Mapping[str, str]  # user id → email as recorded
    groups: tuple[LegacyGroup, ...]


def subject_id_for_email(email: str) -> str:
    return email.strip().lower()


def _strings(value: object, pointer: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise LegacyExportInvalid("must be a list of non-empty strings", pointer=pointer)
    return tuple(value)


def _string(obj: Mapping[str, object], key: str, pointer: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise LegacyExportInvalid("must be a non-empty string", pointer=f"{pointer}/{key}")
    return value


def parse_export(data: object) -> LegacyExport:
    """Validate an export; errors point into the document (``/groups/3/userIds``)."""
    if not isinstance(data, Mapping):
        raise LegacyExportInvalid("the export must be a JSON object", pointer="")
    if data.get("format") != FORMAT:
        raise LegacyExportInvalid(f"format must be {FORMAT!r}", pointer="/format")
    users = data.get("users")
    if not isinstance(users, list):
        raise LegacyExportInvalid("must be a list", pointer="/users")
    emails: dict[str, str] = {}
    for i, user in enumerate(users):
        if not isinstance(user, Mapping):
            raise LegacyExportInvalid("must be an object", pointer=f"/users/{i}")
        uid = _string(user, "id", f"/users/{i}")
        if uid in emails:
            raise LegacyExportInvalid(f"user {uid!r} appears twice", pointer=f"/users/{i}/id")
        email = _string(user, "email", f"/users/{i}")
        if "@" not in email:
            raise LegacyExportInvalid("must be an email address", pointer=f"/users/{i}/email")
        emails[uid] = email
    raw_groups = data.get("groups")
    if not isinstance(raw_groups, list):
        raise LegacyExportInvalid("must be a list", pointer="/groups")
    groups: list[LegacyGroup] = []
    seen: set[str] = set()
    for i, g in enumerate(raw_groups):
        base = f"/groups/{i}"
        if not isinstance(g, Mapping):
            raise LegacyExportInvalid("must be an object", pointer=base)
        gid = _string(g, "id", base)
        if gid in seen:
            raise LegacyExportInvalid(f"group {gid!r} appears twice", pointer=f"{base}/id")
        seen.add(gid)
        groups.append(
            LegacyGroup(
                id=gid,
                organization_id=_string(g, "organizationId", base),
                name=_string(g, "name", base),
                user_ids=_strings(g.get("userIds", []), f"{base}/userIds"),
                role_ids=_strings(g.get("roleIds", []), f"{base}/roleIds"),
                project_ids=_strings(g.get("projectIds", []), f"{base}/projectIds"),
            )
        )
    return LegacyExport(emails, tuple(groups))


def _members(
    export: LegacyExport, group: LegacyGroup, issuer: str
) -> tuple[tuple[GroupMember, ...], tuple[str, ...]]:
    members: dict[str, GroupMember] = {}
    unresolved: list[str] = []
    for uid in group.user_ids:
        email = export.emails.get(uid)
        if email is None:
            unresolved.append(uid)
            continue
        sid = subject_id_for_email(email)
        members.setdefault(sid, GroupMember(issuer, sid, email))
    return tuple(members.values()), tuple(unresolved)


class ChangeKind(enum.Enum):
    CREATE = "create"  # the group is new: created with subjects and the legacy field
    FILL = "fill"  # the group exists without subjects: subjects are filled in
    SKIP = "skip"  # the group already has subjects: nothing changes


@dataclass(frozen=True, slots=True)
class ExistingGroup:
    organization_id: str
    member_count: int
    has_legacy_field: bool


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    group: LegacyGroup
    members: tuple[GroupMember, ...]
    unresolved: tuple[str, ...]
    set_legacy_field: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "group": self.group.id,
            "organization": self.group.organization_id,
            "action": self.kind.value,
            "subjects": [m.id for m in self.members] if self.kind is not ChangeKind.SKIP else [],
            "unresolved_user_ids": list(self.unresolved),
            "reason": self.reason,
        }


def plan_import(
    export: LegacyExport, existing: Mapping[str, ExistingGroup], *, issuer: str
) -> Sequence[Change]:
    """What the import would do to each group of ``export`` given the groups stored now."""
    changes: list[Change] = []
    for group in export.groups:
        members, unresolved = _members(export, group, issuer)
        current = existing.get(group.id)
        if current is None:
            changes.append(Change(ChangeKind.CREATE, group, members, unresolved, True, "new group"))
        elif current.organization_id != group.organization_id:
            raise LegacyExportInvalid(
                f"group {group.id!r} exists in organization {current.organization_id!r}",
                pointer=f"/groups/{export.groups.index(group)}/organizationId",
            )
        elif current.member_count == 0:
            changes.append(
                Change(
                    ChangeKind.FILL,
                    group,
                    members,
                    unresolved,
                    not current.has_legacy_field,
                    "no subjects yet",
                )
            )
        else:
            changes.append(
                Change(ChangeKind.SKIP, group, (), unresolved, False, "subjects already set")
            )
    return changes


def legacy_facts(
    export: LegacyExport,
    identity: Identity,
    *,
    local_issuer: str,
    project_orgs: Mapping[str, str],
    organizations: frozenset[str],
) -> SubjectFacts:
    """Membership resolved the legacy way: the identity's email among a group's users."""
    held: list[GroupFacts] = []
    if identity.issuer == local_issuer:
        for group in export.groups:
            emails = (export.emails.get(uid) for uid in group.user_ids)
            if any(e is not None and subject_id_for_email(e) == identity.id for e in emails):
                held.append(
                    GroupFacts(
                        group.id,
                        group.organization_id,
                        frozenset(group.role_ids),
                        frozenset(group.project_ids),
                    )
                )
    return SubjectFacts(
        groups=tuple(held),
        project_orgs=dict(project_orgs),
        organizations=organizations,
    )
