"""``ETag`` / ``If-Match`` for versioned records (RFC 9110 §13.1.1).

The entity tag is the record's version, strong: ``"7"``. An update without ``If-Match``
is refused with 428 (a blind write could overwrite someone's change); a stale one is
412 (:class:`~watchword.errors.VersionConflict`). Deletes take ``If-Match`` optionally.

Rules (RFC 9110 §13.1.1, https://www.rfc-editor.org/rfc/rfc9110#section-13.1.1):

- ``If-Match`` uses the strong comparison: a weak tag (``W/"7"``) never matches: 412;
- ``*`` matches any current representation: the change proceeds at whatever version the
  record has (``None`` below); a missing record is a 404 before that;
- a version no record can have (beyond the ``version`` column, a 32-bit ``INTEGER`` on
  PostgreSQL) matches nothing: 412, never a database error;
- anything else (not a quoted number) is 400 ``invalid_request``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Final, Protocol, TypeVar

from fastapi import Header, HTTPException, Response

from watchword.errors import InvalidInput, VersionConflict
from watchword.rbac.model import Stamp

__all__ = [
    "MAX_VERSION",
    "IfMatch",
    "Versioned",
    "optional_version",
    "required_version",
    "set_etag",
    "tagged",
]


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


MAX_VERSION: Final = 2**31 - 1  # the version columns are INTEGER
ANY: Final = "*"


def optional_version(value: str | None) -> int | None:
    """The version ``If-Match`` requires, or ``None`` (no header, or ``*``: any version)."""
    if value is None:
        return None
    raw = value.strip()
    if raw == ANY:
        return None
    if raw.startswith("W/"):
        raise VersionConflict("If-Match uses the strong comparison: a weak tag never matches")
    digits = raw.strip('"')  # an unquoted version is tolerated, as before
    if not (digits.isdigit() and digits.isascii()):
        raise InvalidInput("If-Match must be an ETag this API returned", pointer="/If-Match")
    version = int(digits)
    if version > MAX_VERSION:
        raise VersionConflict(f"no record is at version {digits}")
    return version


def required_version(value: str | None) -> int | None:
    """As :func:`optional_version`, but the header must be there (428 otherwise)."""
    if value is None:
        raise HTTPException(
            status_code=428,
            detail="this update needs If-Match with the ETag you read, so no change is lost",
        )
    return optional_version(value)
