"""``ETag`` / ``If-Match`` for versioned records (RFC 9110 §13.1.1).

The entity tag is the record's version, strong: ``"7"``. An update without ``If-Match``
is refused with 428 (a blind write could overwrite someone's change); a stale one is
412 (:class:`~watchword.errors.VersionConflict`). Deletes take ``If-Match`` optionally.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Protocol, TypeVar

from fastapi import Header, HTTPException, Response

from watchword.errors import InvalidInput
from watchword.rbac.model import Stamp

__all__ = ["IfMatch", "Versioned", "optional_version", "required_version", "set_etag", "tagged"]


class Versioned(Protocol):
    @property
    def stamp(self) -> Stamp: ...


V = TypeVar("V", bound=Versioned)
W = TypeVar("W")

IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", description='The ETag read ("<version>"); required on updates.'),
]


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


def tagged(response: Response, record: V, out: Callable[[V], W]) -> W:
    """The wire form of ``record``, its version set as the response's ETag."""
    set_etag(response, record.stamp.version)
    return out(record)


def optional_version(value: str | None) -> int | None:
    if value is None:
        return None
    raw = value.strip()
    raw = raw.removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise InvalidInput("If-Match must be an ETag this API returned", pointer="/If-Match")
    return int(raw)


def required_version(value: str | None) -> int:
    version = optional_version(value)
    if version is None:
        raise HTTPException(
            status_code=428,
            detail="this update needs If-Match with the ETag you read, so no change is lost",
        )
    return version
