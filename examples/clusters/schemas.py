"""The wire shapes of the clusters API (apart from the table, :mod:`.models`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .models import Cluster

__all__ = ["ClusterIn", "ClusterOut", "ClusterPatch", "ShareIn", "SharedAction"]

SharedAction = Literal["read", "update", "delete", "share"]
"""What a share may grant: the type's actions on an existing cluster (not ``create``)."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClusterIn(_In):
    name: str = Field(min_length=1, max_length=200)
    project_id: str | None = Field(
        default=None, min_length=1, max_length=64, description="A project of the organization."
    )


class ClusterPatch(_In):
    name: str = Field(min_length=1, max_length=200)


class ShareIn(_In):
    actions: list[SharedAction] = Field(
        max_length=4, description="What the user may do; empty: the share is removed."
    )


class ClusterOut(BaseModel):
    id: int
    org_id: str
    project_id: str | None
    owner_id: str
    name: str
    shares: dict[str, list[str]]

    @classmethod
    def of(cls, row: Cluster) -> ClusterOut:
        return cls(
            id=row.id,
            org_id=row.org_id,
            project_id=row.project_id,
            owner_id=row.owner_id,
            name=row.name,
            shares={user: list(actions) for user, actions in row.shares.items()},
        )
