"""FastAPI dependencies: the runtime, and the administrator check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from watchword.bootstrap import AdminKey, verify_admin_key
from watchword.errors import AuthenticationError
from watchword.runtime import Runtime
from watchword.secret import Secret

__all__ = ["AdminDep", "RuntimeDep", "get_runtime", "require_admin"]

_bearer = HTTPBearer(auto_error=False, description="A bootstrap admin key (wwb_…).")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def require_admin(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AdminKey:
    if credentials is None:
        raise AuthenticationError("this endpoint needs an administrator credential (Bearer)")
    return await verify_admin_key(runtime.engine, Secret(credentials.credentials))


AdminDep = Annotated[AdminKey, Depends(require_admin)]
