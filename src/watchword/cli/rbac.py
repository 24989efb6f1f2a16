"""``watchword org|project|group|role|acl|issuer|service-account``: RBAC administration.

The commands (in :mod:`watchword.cli.directory` and :mod:`watchword.cli.rbac_admin`) call
the same repositories as the HTTP API; they act as the operator (no engine check: whoever
runs the CLI holds the database credentials). Updates read the current version and write
conditionally on it, so a concurrent change is reported (exit 1, ``version_conflict``)
instead of lost.
"""

from __future__ import annotations

from watchword.cli.directory import group_app, org_app, project_app
from watchword.cli.rbac_admin import acl_app, issuer_app, role_app, sa_app

__all__ = ["GROUPS", "NAME", "app"]

GROUPS = [
    (org_app, "org"),
    (project_app, "project"),
    (group_app, "group"),
    (role_app, "role"),
    (acl_app, "acl"),
    (issuer_app, "issuer"),
    (sa_app, "service-account"),
]
# cli.main evaluates getattr(module, "GROUPS", [(module.app, module.NAME)]) with an eager
# default, so a GROUPS module needs these two as well; GROUPS is what gets registered.
app, NAME = GROUPS[0]
