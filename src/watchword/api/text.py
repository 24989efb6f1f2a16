"""What text the API accepts: no NUL, no control characters where they make no sense.

PostgreSQL cannot store U+0000 in a text column (SQLite can), so a NUL that reached the
database answered 500 on one backend and was stored on the other. It is refused at the
edge instead, the same way on both, with a 422 and a pointer:

- every string of a request body, at any depth (:class:`PrintableModel`): no C0 control
  character but tab, line feed and carriage return, and no DEL;
- identifiers, names, URLs and filters (:data:`Line`, path parameters and query values,
  checked by :func:`printable_parameters`): no control character at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Final

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, field_validator

__all__ = [
    "Line",
    "PrintableModel",
    "control_character_in",
    "printable_parameters",
]

# Rules
IN_TEXT: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab, LF, CR allowed
IN_LINE: Final = re.compile(r"[\x00-\x1f\x7f]")


def control_character_in(value: str, rule: re.Pattern[str] = IN_LINE) -> str | None:
    """The first forbidden character of ``value`` as ``U+XXXX``, or ``None``."""
    found = rule.search(value)
    return None if found is None else f"U+{ord(found.group()):04X}"


def _message(char: str, where: str = "") -> str:
    at = f" at {where}" if where else ""
    return f"control character {char}{at} is not allowed"


def _check_line(value: str) -> str:
    char = control_character_in(value)
    if char is not None:
        raise ValueError(_message(char))
    return value


Line = Annotated[str, AfterValidator(_check_line)]
"""A single-line string: an identifier, a name, a URL."""


def _first_bad(value: object, path: str) -> tuple[str, str] | None:
    """``(pointer below the field, character)`` of the first bad string in a JSON value."""
    if isinstance(value, str):
        char = control_character_in(value, IN_TEXT)
        return None if char is None else (path, char)
    if isinstance(value, BaseModel):
        return None  # a nested model checks its own fields
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"
            if isinstance(key, str) and (char := control_character_in(key, IN_TEXT)):
                return where, char
            if found := _first_bad(item, where):
                return found
    elif isinstance(value, list | tuple | set | frozenset):
        for i, item in enumerate(value):
            if found := _first_bad(item, f"{path}/{i}"):
                return found
    return None


class PrintableModel(BaseModel):
    """A request body whose strings, at any depth, hold no NUL or other control character
    (tab and line breaks excepted)."""

    @field_validator("*", mode="after")
    @classmethod
    def _printable(cls, value: Any) -> Any:
        found = _first_bad(value, "")
        if found is not None:
            where, char = found
            raise ValueError(_message(char, where.lstrip("/")))
        return value


async def printable_parameters(request: Request) -> None:
    """An app-wide dependency: path parameters and query values are single lines."""
    errors: list[dict[str, Any]] = []
    for name, value in request.path_params.items():
        if isinstance(value, str) and (char := control_character_in(value)):
            errors.append(_error(("path", name), char, value))
    for name, value in request.query_params.multi_items():
        if char := control_character_in(value) or control_character_in(name):
            errors.append(_error(("query", name), char, value))
    if errors:
        raise RequestValidationError(errors)


def _error(loc: tuple[str, str], char: str, value: str) -> dict[str, Any]:
    return {"type": "control_character", "loc": loc, "msg": _message(char), "input": value}
