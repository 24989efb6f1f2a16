"""The clusters API: every route guarded by watchword.

- ``GET /orgs/{org}/clusters``: the clusters of ``org`` the caller may read, filtered by
  the database (``guard.authorized``), in id order, ``limit`` at a time after ``after``.
- ``POST /orgs/{org}/clusters``: create, a type-level check in ``org`` (no cluster exists
  yet); the caller becomes the owner.
- ``GET``, ``PATCH``, ``DELETE /orgs/{org}/clusters/{cluster_id}``: ``read``, ``update``,
  ``delete`` checked on the row itself, read through the mapping.
- ``PUT /orgs/{org}/clusters/{cluster_id}/shares/{user}``: ``share``; grants ``user`` (an
  app user id) the listed actions, or removes the share when the list is empty.

A cluster is looked up in the organization of the path: a cluster of another organization
is a 404, the same as one that does not exist (the path never tells them apart). The caller
is authenticated before the row is looked up, so an anonymous request is a 401, never a 404.
"""

# No postponed annotations: FastAPI reads the annotations of the routes built in a function.
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from watchword.errors import NotFound, PermissionDenied
from watchword.integrations import Caller
from watchword.integrations.fastapi import Guard

from .models import CLUSTERS, Cluster
from .schemas import ClusterIn, ClusterOut, ClusterPatch, ShareIn

__all__ = ["clusters_router"]


def clusters_router(
    guard: Guard,
    database: Callable[[], AsyncIterator[AsyncSession]],
    *,
    issuer: str,
) -> APIRouter:
    """The routes, guarded by ``guard`` (which also filters lists in SQL), on the sessions
    ``database`` gives; ``issuer`` is the issuer of the app's users (owners are its ids)."""
    router = APIRouter(prefix="/orgs/{org}/clusters", tags=["clusters"])
    Session = Annotated[AsyncSession, Depends(database)]

    async def cluster(org: str, cluster_id: int, session: Session) -> Cluster:
        """The row the route acts on: the guard checks it as it is (the mapping reads
        it), and the route receives the same row (FastAPI resolves it once a request)."""
        row = await session.scalar(
            select(Cluster).where(Cluster.id == cluster_id, Cluster.org_id == org)
        )
        if row is None:
            raise NotFound(f"no cluster {cluster_id} in organization {org!r}")
        return row

    Row = Annotated[Cluster, Depends(cluster)]
    Anyone = Annotated[Caller, Depends(guard.caller)]
    Creator = Annotated[Caller, Depends(guard.require(CLUSTERS, "create", org_param="org"))]
    Reader = Annotated[Caller, Depends(guard.require(CLUSTERS, "read", cluster))]
    Updater = Annotated[Caller, Depends(guard.require(CLUSTERS, "update", cluster))]
    Deleter = Annotated[Caller, Depends(guard.require(CLUSTERS, "delete", cluster))]
    Sharer = Annotated[Caller, Depends(guard.require(CLUSTERS, "share", cluster))]

    @router.get("", summary="The organization's clusters the caller may read")
    async def list_clusters(
        org: str,
        caller: Anyone,
        session: Session,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        after: Annotated[int | None, Query(description="The last id of the previous page.")] = None,
    ) -> list[ClusterOut]:
        # The database filters: rows the caller may not read are never fetched (embedded:
        # the engine's condition; remote: the server's residual, compiled here).
        stmt = await guard.authorized(select(Cluster).where(Cluster.org_id == org), caller, "read")
        if after is not None:
            stmt = stmt.where(Cluster.id > after)
        found = await session.scalars(stmt.order_by(Cluster.id).limit(limit))
        return [ClusterOut.of(row) for row in found]

    @router.post("", status_code=status.HTTP_201_CREATED, summary="Create a cluster")
    async def create_cluster(
        org: str, caller: Creator, body: ClusterIn, session: Session
    ) -> ClusterOut:
        if caller.issuer != issuer:
            # Owners are user ids of the app's issuer; anyone else's cluster would be
            # owned by nobody.
            raise PermissionDenied(f"clusters are owned by users of {issuer}")
        row = Cluster(
            org_id=org,
            project_id=body.project_id,
            owner_id=caller.subject,
            name=body.name,
            shares={},
        )
        session.add(row)
        await session.commit()
        return ClusterOut.of(row)

    # The caller comes first in each signature: it is authenticated before the row is read.

    @router.get("/{cluster_id}", summary="Read a cluster")
    async def read_cluster(caller: Reader, row: Row) -> ClusterOut:
        return ClusterOut.of(row)

    @router.patch("/{cluster_id}", summary="Rename a cluster")
    async def update_cluster(
        caller: Updater, row: Row, body: ClusterPatch, session: Session
    ) -> ClusterOut:
        row.name = body.name
        await session.commit()
        return ClusterOut.of(row)

    @router.delete(
        "/{cluster_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a cluster"
    )
    async def delete_cluster(caller: Deleter, row: Row, session: Session) -> None:
        await session.delete(row)
        await session.commit()

    @router.put("/{cluster_id}/shares/{user}", summary="Share a cluster with a user")
    async def share_cluster(
        user: str, caller: Sharer, row: Row, body: ShareIn, session: Session
    ) -> ClusterOut:
        shares = dict(row.shares)  # a new dict: SQLAlchemy sees the change
        if body.actions:
            shares[user] = sorted(set(body.actions))
        else:
            shares.pop(user, None)
        row.shares = shares
        await session.commit()
        return ClusterOut.of(row)

    return router
