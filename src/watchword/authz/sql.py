"""Compile a residual predicate to a SQLAlchemy condition for the application's own table.

A :class:`ColumnMapping` says where each object field lives. The ACL is either

- :class:`JsonAcl`: JSON columns holding ``{"<subject key or group id>": ["read", ...]}``.
  PostgreSQL (JSONB, or JSON cast to JSONB) uses containment, one pair per key:
  ``acl @> CAST(:doc AS JSONB) OR acl @> CAST(:doc_any AS JSONB)`` with the bound documents
  ``{"<key>": ["<action>"]}`` and ``{"<key>": ["*"]}``, which a GIN index
  (``jsonb_path_ops``) serves; SQLite uses
  ``EXISTS (SELECT 1 FROM json_each(acl) AS k, json_each(k.value) AS a WHERE ...)``;
- :class:`AclTable`: a join table (object id, kind, key, action), one row per grant, tested
  with a correlated ``EXISTS`` (works on any dialect);
- :data:`NO_ACL`: the table has no ACL, so ACL terms are FALSE.

Leaving out a field the residual needs raises :class:`~watchword.errors.UnsupportedPredicate`
(never silently TRUE).

NULL: SQL's ``org_id NOT IN (...)`` is NULL when ``org_id`` is NULL, where Python's answer
is true. Negations are therefore pushed down to the leaves and each negated leaf is written
NULL-safe (``org_id IS NULL OR org_id NOT IN (...)``). Every positive leaf is NULL only
where Python says false, and a negation-free formula treats NULL like false, so the rows
selected equal the objects :meth:`Prepared.matches` accepts.

Large IN lists are bound as one expanding parameter (``IN (__[POSTCOMPILE_x])``), or with
``ColumnMapping(array_params=True)`` on PostgreSQL as ``col = ANY(:array)``: one parameter
whatever the list length, and still an index condition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias, assert_never, cast

from sqlalchemy import (
    ARRAY,
    ClauseElement,
    ColumnElement,
    FromClause,
    Select,
    SQLColumnExpression,
    and_,
    any_,
    bindparam,
    exists,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean, String

from watchword.authz.model import WILDCARD
from watchword.authz.residual import (
    AclHas,
    AclKind,
    And,
    Const,
    Eq,
    Field,
    In,
    IsNull,
    Node,
    Not,
    Or,
)
from watchword.errors import UnsupportedPredicate

__all__ = [
    "NO_ACL",
    "AclTable",
    "ColumnMapping",
    "JsonAcl",
    "NoAcl",
    "RenderedSql",
    "SqlCondition",
    "render_sql",
    "residual_to_sql",
]

SqlCondition: TypeAlias = ColumnElement[bool]
SqlColumn: TypeAlias = SQLColumnExpression[object]


@dataclass(frozen=True, slots=True)
class JsonAcl:
    """ACLs in JSON columns ``{key: [actions]}``; a missing column means that ACL is empty."""

    users: SqlColumn | None = None
    groups: SqlColumn | None = None


@dataclass(frozen=True, slots=True)
class AclTable:
    """ACLs in a join table: one row (object id, kind, key, action) per grant."""

    table: FromClause
    object_id: SqlColumn
    kind: SqlColumn
    key: SqlColumn
    action: SqlColumn
    user_kind: str = "user"
    group_kind: str = "group"


@dataclass(frozen=True, slots=True)
class NoAcl:
    """The table has no ACL: ACL terms compile to FALSE."""


NO_ACL = NoAcl()


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Where the object fields live; ``acl`` must be given (possibly :data:`NO_ACL`) if used."""

    id: SqlColumn | None = None
    org_id: SqlColumn | None = None
    project_id: SqlColumn | None = None
    owner: SqlColumn | None = None
    acl: JsonAcl | AclTable | NoAcl | None = None
    array_params: bool = False

    def column(self, field: Field) -> SqlColumn:
        col = getattr(self, field.value)
        if col is None:
            raise UnsupportedPredicate(
                f"the residual needs the object field {field.value!r} but the column mapping "
                "has no column for it"
            )
        return cast("SqlColumn", col)


class _JsonAclHas(ColumnElement[bool]):
    """``acl`` (a JSON object of key → action list) grants ``action`` or ``*`` to ``key``."""

    __visit_name__ = "watchword_json_acl_has"
    inherit_cache = True
    type = Boolean()
    _traverse_internals = [  # noqa: RUF012  (SQLAlchemy's own class attribute)
        ("column", InternalTraversal.dp_clauseelement),
        ("grantee", InternalTraversal.dp_clauseelement),
        ("action", InternalTraversal.dp_clauseelement),
        ("doc", InternalTraversal.dp_clauseelement),
        ("doc_any", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: SqlColumn, key: str, action: str) -> None:
        self.column: ClauseElement = column  # type: ignore[assignment]
        self.grantee = bindparam("acl_key", key, type_=String(), unique=True)
        self.action = bindparam("acl_action", action, type_=String(), unique=True)
        # PostgreSQL binds whole containment documents: constants to the planner, as in a
        # hand-written ``acl @> '{"k": ["read"]}'`` (jsonb_build_object is not folded).
        self.doc = bindparam("acl_doc", json.dumps({key: [action]}), type_=String(), unique=True)
        self.doc_any = bindparam(
            "acl_doc", json.dumps({key: [WILDCARD]}), type_=String(), unique=True
        )


@compiles(_JsonAclHas, "sqlite")
def _json_acl_sqlite(element: _JsonAclHas, compiler: SQLCompiler, **kw: object) -> str:
    col = compiler.process(element.column, **kw)
    key = compiler.process(element.grantee, **kw)
    action = compiler.process(element.action, **kw)
    # Only fixed text and compiled sub-clauses (bound parameters) go into this string.
    return (
        f"EXISTS (SELECT 1 FROM json_each({col}) AS acl_k, json_each(acl_k.value) AS acl_a "  # noqa: S608
        f"WHERE acl_k.key = {key} AND acl_a.value IN ({action}, '{WILDCARD}'))"
    )


@compiles(_JsonAclHas, "postgresql")
def _json_acl_postgresql(element: _JsonAclHas, compiler: SQLCompiler, **kw: object) -> str:
    col = compiler.process(element.column, **kw)
    col_type = getattr(element.column, "type", None)
    # Resolve with_variant() types for this dialect; plain JSON is cast (no GIN index then).
    impl = col_type.dialect_impl(compiler.dialect) if col_type is not None else None
    if not isinstance(impl, postgresql.JSONB):
        col = f"CAST({col} AS JSONB)"
    doc = compiler.process(element.doc, **kw)
    doc_any = compiler.process(element.doc_any, **kw)
    # Containment with bound documents can use a GIN (jsonb_path_ops) index.
    return f"({col} @> CAST({doc} AS JSONB) OR {col} @> CAST({doc_any} AS JSONB))"


@compiles(_JsonAclHas)
def _json_acl_other(element: _JsonAclHas, compiler: SQLCompiler, **kw: object) -> str:
    raise UnsupportedPredicate(
        f"JSON ACL columns are supported on PostgreSQL and SQLite, not {compiler.dialect.name!r}; "
        "map the ACL as a join table (AclTable) instead"
    )


def _in_list(col: SqlColumn, values: frozenset[str], mapping: ColumnMapping) -> SqlCondition:
    ordered = sorted(values)
    if mapping.array_params:
        col_type = getattr(col, "type", None)
        array = bindparam(
            None, ordered, type_=ARRAY(col_type if col_type is not None else Boolean())
        )
        return col == any_(array)
    return col.in_(ordered)


def _not_in_list(col: SqlColumn, values: frozenset[str], mapping: ColumnMapping) -> SqlCondition:
    ordered = sorted(values)
    if mapping.array_params:
        col_type = getattr(col, "type", None)
        array = bindparam(
            None, ordered, type_=ARRAY(col_type if col_type is not None else Boolean())
        )
        # NOT (= ANY) rather than <> ALL: the form PostgreSQL plans like a hand-written NOT IN.
        return or_(col.is_(None), not_(col == any_(array)))
    return or_(col.is_(None), col.not_in(ordered))


def _acl(node: AclHas, mapping: ColumnMapping) -> SqlCondition:
    acl = mapping.acl
    if acl is None:
        raise UnsupportedPredicate(
            "the residual tests the object's ACL but the column mapping has no ACL; "
            "pass acl=JsonAcl(...), acl=AclTable(...) or acl=NO_ACL"
        )
    if isinstance(acl, NoAcl):
        return false()
    if isinstance(acl, JsonAcl):
        col = acl.users if node.kind is AclKind.USERS else acl.groups
        if col is None:
            return false()
        # One containment per key (keys are the subject's groups, not its organizations).
        return or_(*(_JsonAclHas(col, key, node.action) for key in sorted(node.keys)))
    if isinstance(acl, AclTable):
        id_col = mapping.column(Field.ID)
        kind = acl.user_kind if node.kind is AclKind.USERS else acl.group_kind
        key_col = acl.key
        keys = sorted(node.keys)
        key_test = key_col == keys[0] if len(keys) == 1 else key_col.in_(keys)
        return (
            exists()
            .where(
                acl.object_id == id_col,
                acl.kind == kind,
                key_test,
                acl.action.in_([node.action, WILDCARD]),
            )
            .correlate_except(acl.table)
        )
    assert_never(acl)


def _compile(node: Node, m: ColumnMapping, negated: bool) -> SqlCondition:
    if isinstance(node, Const):
        return true() if node.value != negated else false()
    if isinstance(node, And | Or):
        parts = [_compile(n, m, negated) for n in node.items]
        # De Morgan: a negated AND is an OR of negations, and the other way round.
        return and_(*parts) if isinstance(node, And) != negated else or_(*parts)
    if isinstance(node, Not):
        return _compile(node.item, m, not negated)
    if isinstance(node, In):
        col = m.column(node.field)
        return _not_in_list(col, node.values, m) if negated else _in_list(col, node.values, m)
    if isinstance(node, Eq):
        col = m.column(node.field)
        if negated:
            return or_(col.is_(None), col != node.value)
        return col == node.value
    if isinstance(node, IsNull):
        col = m.column(node.field)
        return col.is_not(None) if negated else col.is_(None)
    if isinstance(node, AclHas):
        cond = _acl(node, m)
        return not_(func.coalesce(cond, false())) if negated else cond
    assert_never(node)


def residual_to_sql(node: Node, columns: ColumnMapping) -> SqlCondition:
    """The SQLAlchemy condition selecting exactly the rows ``node`` accepts."""
    return _compile(node, columns, negated=False)


DialectName: TypeAlias = Literal["postgresql", "sqlite"]
ParamStyle: TypeAlias = Literal["named", "pyformat", "qmark", "numeric_dollar"]


@dataclass(frozen=True, slots=True)
class RenderedSql:
    """SQL text with its parameters, for callers outside Python.

    ``params`` maps names to values; ``param_order`` gives the positional order for the
    ``qmark`` and ``numeric_dollar`` styles.
    """

    sql: str
    params: Mapping[str, object]
    param_order: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"sql": self.sql, "params": dict(self.params), "param_order": list(self.param_order)}


def _dialect(name: DialectName, paramstyle: ParamStyle) -> Dialect:
    if name == "postgresql":
        return postgresql.psycopg.dialect(paramstyle=paramstyle)  # type: ignore[no-untyped-call]
    if name == "sqlite":
        return sqlite.pysqlite.dialect(paramstyle=paramstyle)
    raise UnsupportedPredicate(f"unknown SQL dialect {name!r}; use 'postgresql' or 'sqlite'")


def render_sql(
    condition: SqlCondition, dialect: DialectName, paramstyle: ParamStyle = "named"
) -> RenderedSql:
    """Render ``condition`` as a WHERE fragment for ``dialect``, with separate parameters."""
    # Compiled alone, a correlated EXISTS would list the outer table in its own FROM; inside
    # a SELECT over the outer table it correlates. The outer FROM is a plain table list, so
    # the first WHERE keyword is the one we want to cut at.
    statement: Select[tuple[str]] = select(literal_column("1")).where(condition)
    compiled = statement.compile(
        dialect=_dialect(dialect, paramstyle), compile_kwargs={"render_postcompile": True}
    )
    _, _, where = str(compiled).partition("\nWHERE ")
    params = dict(compiled.params)
    order = tuple(compiled.positiontup) if compiled.positiontup else tuple(params)
    return RenderedSql(where, params, order)
