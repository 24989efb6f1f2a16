"""Administration of bootstrap keys (``/v1/admin``)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict

from watchword.api.deps import AdminDep, RuntimeDep
from watchword.bootstrap import list_admin_keys, revoke_admin_key

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class AdminKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    created_at: datetime
    revoked_at: datetime | None


class WhoAmI(BaseModel):
    kind: str
    id: str


@router.get("/whoami", summary="The administrator credential in use")
async def whoami(admin: AdminDep) -> WhoAmI:
    return WhoAmI(kind=admin.kind, id=admin.id)


@router.get("/keys", summary="Bootstrap admin keys (never their secrets)")
async def keys(_admin: AdminDep, runtime: RuntimeDep) -> list[AdminKeyOut]:
    return [AdminKeyOut.model_validate(k) for k in await list_admin_keys(runtime.engine)]


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a key")
async def revoke(key_id: str, _admin: AdminDep, runtime: RuntimeDep) -> None:
    await revoke_admin_key(runtime.engine, key_id, runtime.clock)
