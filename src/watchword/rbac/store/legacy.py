"""Apply a legacy-groups import plan (``watchword.rbac.legacy``) in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, insert, select, update

from watchword.rbac.legacy import Change, ChangeKind, ExistingGroup, LegacyExport, plan_import
from watchword.rbac.store.context import StoreContext
from watchword.rbac.store.groups import create_group
from watchword.rbac.store.record import writing
from watchword.rbac.tables import group_members, groups

__all__ = ["import_legacy_groups"]


async def _existing(ctx: StoreContext, ids: Sequence[str]) -> dict[str, ExistingGroup]:
    if not ids:
        return {}
    counts = (
        select(group_members.c.group_id, func.count().label("n"))
        .where(group_members.c.group_id.in_(list(ids)))
        .group_by(group_members.c.group_id)
        .subquery()
    )
    stmt = (
        select(groups.c.id, groups.c.organization_id, groups.c.legacy_user_ids, counts.c.n)
        .outerjoin(counts, counts.c.group_id == groups.c.id)
        .where(groups.c.id.in_(list(ids)))
    )
    async with ctx.engine.connect() as conn:
        return {
            r.id: ExistingGroup(r.organization_id, int(r.n or 0), r.legacy_user_ids is not None)
            for r in await conn.execute(stmt)
        }


async def import_legacy_groups(
    ctx: StoreContext, export: LegacyExport, *, dry_run: bool
) -> Sequence[Change]:
    """Plan (and unless ``dry_run``, apply) the import; returns the plan."""
    existing = await _existing(ctx, [g.id for g in export.groups])
    plan = plan_import(export, existing, issuer=ctx.issuer_url)
    if dry_run:
        return plan
    for change in plan:
        g = change.group
        if change.kind is ChangeKind.CREATE:
            await create_group(
                ctx,
                group_id=g.id,
                organization_id=g.organization_id,
                name=g.name,
                members=change.members,
                role_ids=g.role_ids,
                project_ids=g.project_ids,
                legacy_user_ids=g.user_ids,
            )
        elif change.kind is ChangeKind.FILL:
            async with writing(ctx.engine) as conn:
                # Only if it still has no subjects (a concurrent edit wins).
                present = (
                    await conn.execute(
                        select(func.count())
                        .select_from(group_members)
                        .where(group_members.c.group_id == g.id)
                    )
                ).scalar_one()
                if present:
                    continue
                for m in change.members:
                    await conn.execute(
                        insert(group_members).values(
                            group_id=g.id, issuer=m.issuer, subject_id=m.id, email=m.email
                        )
                    )
                values: dict[str, object] = {
                    "version": groups.c.version + 1,
                    "updated_at": ctx.clock.now(),
                }
                if change.set_legacy_field:
                    values["legacy_user_ids"] = list(g.user_ids)
                await conn.execute(update(groups).where(groups.c.id == g.id).values(values))
    return plan
