"""Form-encoded request bodies read by hand: one named field, a size cap, a clear error.

FastAPI's ``Form`` needs python-multipart; the few form endpoints (RFC 7009/7662 token
endpoints, back-channel logout) take one field each, so they read it here and describe the
body in the OpenAPI document with :func:`form_body`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import Request

from watchword.errors import InvalidInput

__all__ = ["FORM", "form_body", "form_field"]

FORM = "application/x-www-form-urlencoded"


def form_body(required: str, *optional: str) -> dict[str, Any]:
    """``openapi_extra`` describing a form body with these string fields."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                FORM: {
                    "schema": {
                        "type": "object",
                        "required": [required],
                        "properties": {name: {"type": "string"} for name in (required, *optional)},
                    }
                }
            },
        }
    }


async def form_field(request: Request, name: str, *, max_bytes: int) -> str:
    """The one non-empty value of ``name`` in a form-encoded body, or :class:`InvalidInput`."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise InvalidInput(f"the request body must be {FORM}", pointer=f"/{name}")
    raw = await request.body()
    if len(raw) > max_bytes:
        raise InvalidInput("the request body is too large", pointer=f"/{name}")
    values = parse_qs(raw.decode("latin-1"), keep_blank_values=True).get(name, [])
    if len(values) != 1 or not values[0]:
        raise InvalidInput(f"exactly one {name} parameter is required", pointer=f"/{name}")
    return values[0]
