"""The app's own table, and how watchword reads its rows.

A :class:`Cluster` row is what the app has: an integer id, the watchword organization (and
optionally project) it lives in, its owner as the app's own user id, and its shares as a
JSON column ``{user_id: [action, ...]}``. watchword never copies it into anything: the
mapping :func:`cluster_objects` declares once where each field lives, and the engine
(embedded), the guard (remote: it converts the row for the wire) and the SQL filter
(``guard.authorized``) all read the row through it.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from watchword.authz import ObjectMapping, ObjectMappings

__all__ = ["CLUSTERS", "Base", "Cluster", "cluster_objects"]

CLUSTERS: Final = "compute:clusters"
"""The resource type of watchword's policy that clusters are."""


class Base(DeclarativeBase):
    pass


class Cluster(Base):
    __tablename__ = "clusters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(String(64), index=True)
    project_id: Mapped[str | None] = mapped_column(String(64), default=None)
    owner_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # {user_id: [action, ...]}; a new dict is assigned on change (plain JSON is not tracked
    # in place).
    shares: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


def cluster_objects(issuer: str) -> ObjectMappings:
    """How watchword reads a :class:`Cluster`. ``issuer``: the issuer the app's users come
    from, so ``owner_id`` and the keys of ``shares`` are user ids of that issuer (a caller
    of another issuer owns nothing and is granted nothing here)."""
    return ObjectMappings(
        {
            Cluster: ObjectMapping(
                type=CLUSTERS,
                id="id",
                organization="org_id",
                project="project_id",
                owner="owner_id",
                acl_users="shares",
                issuer=issuer,
            )
        }
    )
