"""Cursor pages over records keyed by sortable ids: a page and its opaque cursor."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import ColumnElement, Row, Select, Table
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword.errors import InvalidInput

__all__ = ["MAX_LIMIT", "Page", "decode_cursor", "encode_cursor", "page_rows"]

MAX_LIMIT = 500

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next_cursor: str | None


def encode_cursor(last_key: str) -> str:
    raw = json.dumps({"after": last_key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("the cursor is not one this API returned", pointer="/cursor") from exc
    after = data.get("after") if isinstance(data, dict) else None
    if not isinstance(after, str):
        raise InvalidInput("the cursor is not one this API returned", pointer="/cursor")
    return after


async def page_rows(
    conn: AsyncConnection,
    stmt: Select[tuple[object, ...]],
    table: Table,
    *,
    limit: int,
    cursor: str | None,
    where: Sequence[ColumnElement[bool]] = (),
) -> tuple[list[Row[tuple[object, ...]]], str | None]:
    """One page of ``stmt`` ordered by primary key, and the cursor of the next one."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", pointer="/limit")
    pk = next(iter(table.primary_key.columns))
    stmt = stmt.where(*where)
    if cursor is not None:
        stmt = stmt.where(pk > decode_cursor(cursor))
    rows = list((await conn.execute(stmt.order_by(pk).limit(limit + 1))).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(str(rows[-1]._mapping[pk.name]))
