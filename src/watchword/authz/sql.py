"""Compile a residual predicate to a SQLAlchemy condition for the application's own table.

A :class:`ColumnMapping` says where each object field lives. The ACL is either

- :class:`JsonAcl`: JSON columns holding ``{"<subject key or group id>": ["read", ...]}``.
  PostgreSQL (JSONB, or JSON cast to JSONB) uses containment, one pair per key:
  ``acl @> CAST(:doc AS JSONB) OR acl @> CAST(:doc_any AS JSONB)`` with the bound documents
  ``{"<key>": ["<action>"]}`` and ``{"<key>": ["*"]}``, which a GIN index
  (``jsonb_path_ops``) serves; SQLite uses
  ``EXISTS (SELECT 1 FROM json_each(acl) AS k, json_each(k.value) AS a WHERE ...)``;
- :class:`AclTable`: a join table (object id, kind, key, action), one row per grant, tested
  with an uncorrelated semi-join ``id IN (SELECT object_id FROM acl WHERE kind = :kind AND
  key IN (...) AND action IN (:action, '*'))`` (any dialect; the subquery runs once, from
  an index on ``(kind, key, action, object_id)``). On PostgreSQL an ``IN (SELECT ...)``
  under ``OR`` is a hashed filter that no index serves, so each top-level conjunct that
  tests the ACL under an ``OR`` gets an index copy, AND-ed to the exact condition: the same
  formula with each grant test written ``id = ANY(ARRAY(SELECT ...))`` (an InitPlan, then an
  index condition on the id) and each negated leaf replaced by TRUE (no index serves one).
  The copy is implied by the exact condition, so the rows are the same; it is an ``OR`` of
  indexable arms the planner can answer with a BitmapOr, while the exact condition is the
  filter, evaluated with hash lookups (``id = ANY(array)`` alone would test the whole array
  on every row of a table scan). The copy reuses the exact condition's bound parameters.
  ``AclTable(postgresql_index_copy=False)`` leaves it out;
- :data:`NO_ACL`: the table has no ACL, so ACL terms are FALSE.

Leaving out a field the residual needs raises :class:`~watchword.errors.UnsupportedPredicate`
(never silently TRUE).

NULL: SQL's ``org_id NOT IN (...)`` is NULL when ``org_id`` is NULL, where Python's answer
is true. Negations are therefore pushed down to the leaves and each negated leaf is written
NULL-safe (``org_id IS NULL OR org_id NOT IN (...)``). Every positive leaf is NULL only
where Python says false, and a negation-free formula treats NULL like false, so the rows
selected equal the objects :meth:`Prepared.matches` accepts.

Values: ids in a residual are strings. Each is bound with the type of the column it is
compared with (so an integer column gets ``BIGINT`` parameters, not ``VARCHAR``), after
conversion to that column's Python type for integer and UUID columns: a value that is not
the canonical spelling of an integer (``"42"``, not ``"042"``, ``" 42"`` or ``"x42"``) or
of a UUID (lowercase, hyphenated) equals no row, as in Python, where ``str(row.id)`` is
what an object's id would hold.

Shape: ``x IN A OR (NOT x IN D AND rest)`` with disjoint ``A`` and ``D`` (allowed and denied
organizations) is written ``NOT x IN D AND (x IN A OR rest)``, the same condition with an OR
of indexable tests only.

Large IN lists are bound as one expanding parameter (``IN (__[POSTCOMPILE_x])``), or with
``ColumnMapping(array_params=True)`` on PostgreSQL as ``col = ANY(:array)``: one parameter
whatever the list length, and still an index condition.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, assert_never, cast

from sqlalchemy import (
    ARRAY,
    BindParameter,
    ClauseElement,
    ColumnElement,
    FromClause,
    Select,
    SQLColumnExpression,
    and_,
    any_,
    bindparam,
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
from sqlalchemy.sql.operators import OperatorType
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean, NullType, String, TypeEngine, Uuid

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
    all_of,
    any_of,
    negate,
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
    """ACLs in a join table: one row (object id, kind, key, action) per grant.

    Index it on ``(kind, key, action, object_id)``: each grant test is an uncorrelated
    ``id IN (SELECT object_id FROM acl WHERE kind = ... AND key IN (...) AND action IN
    (..., '*'))``, answered from that index alone. ``postgresql_index_copy`` (default on)
    adds, on PostgreSQL, an index copy of the conditions that test the ACL under an ``OR``
    (grant tests as ``id = ANY(ARRAY(SELECT ...))``), so the planner can answer the whole
    ``OR`` from indexes (see the module docstring and docs/authz.md).
    """

    table: FromClause
    object_id: SqlColumn
    kind: SqlColumn
    key: SqlColumn
    action: SqlColumn
    user_kind: str = "user"
    group_kind: str = "group"
    postgresql_index_copy: bool = True


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
    issuer: str | None = None
    """The owner column and the user ACL's keys hold the user ids of this issuer (the
    application's own user ids), not subject keys ``"<issuer>|<id>"``: a subject of another
    issuer owns nothing and is granted nothing here."""

    def user_ids(self, keys: Iterable[str]) -> list[str]:
        """Subject keys as the owner column and user ACL hold them (see :attr:`issuer`)."""
        if self.issuer is None:
            return sorted(keys)
        prefix = f"{self.issuer}|"
        return sorted(k[len(prefix) :] for k in keys if k.startswith(prefix))

    def column(self, field: Field) -> SqlColumn:
        col = getattr(self, field.value)
        if col is None:
            raise UnsupportedPredicate(
                f"the residual needs the object field {field.value!r} but the column mapping "
                "has no column for it"
            )
        return cast("SqlColumn", col)


# Values and bound parameters ------------------------------------------------------------------

_CANONICAL_INT = re.compile(r"0|-?[1-9][0-9]*")  # what str() of a Python int gives


def _type_of(col: SqlColumn) -> TypeEngine[Any]:
    col_type = getattr(col, "type", None)
    return col_type if isinstance(col_type, TypeEngine) else NullType()


def _to_column_value(col_type: TypeEngine[Any], value: str) -> object | None:
    """``value`` as the column holds it, or None when no row of that type can equal it.

    Integer and UUID columns are compared by their canonical text (what ``str()`` of the
    stored value gives in Python), so ``"042"`` matches no integer row and ``"42"`` matches
    42; other columns take the string as it is.
    """
    if isinstance(col_type, Uuid):
        try:
            parsed = uuid.UUID(value)
        except ValueError:
            return None
        if str(parsed) != value:
            return None
        return parsed if col_type.as_uuid else value
    try:
        python_type = col_type.python_type
    except NotImplementedError:
        return value
    if python_type is int:
        return int(value) if _CANONICAL_INT.fullmatch(value) else None
    return value


def _column_values(col: SqlColumn, values: Iterable[str]) -> list[object]:
    col_type = _type_of(col)
    converted = (_to_column_value(col_type, v) for v in sorted(values))
    return [v for v in converted if v is not None]


def _bind(col: SqlColumn, value: object, *, expanding: bool = False) -> BindParameter[Any]:
    """A parameter typed like ``col`` (untyped columns: typed from the value, as before)."""
    col_type = _type_of(col)
    name = getattr(col, "key", None) or "param"
    if isinstance(col_type, NullType):
        return bindparam(name, value, unique=True, expanding=expanding)
    return bindparam(name, value, type_=col_type, unique=True, expanding=expanding)


def _array_bind(col: SqlColumn, values: Sequence[object]) -> BindParameter[Any]:
    col_type = _type_of(col)
    item_type = Boolean() if isinstance(col_type, NullType) else col_type
    return bindparam(None, list(values), type_=ARRAY(item_type))


def _in_list(col: SqlColumn, values: Iterable[str], mapping: ColumnMapping) -> SqlCondition:
    ordered = _column_values(col, values)
    if not ordered:
        return false()
    if mapping.array_params:
        return col == any_(_array_bind(col, ordered))
    return col.in_(_bind(col, ordered, expanding=True))


def _not_in_list(col: SqlColumn, values: Iterable[str], mapping: ColumnMapping) -> SqlCondition:
    ordered = _column_values(col, values)
    if not ordered:
        return true()
    if mapping.array_params:
        # NOT (= ANY) rather than <> ALL: the form PostgreSQL plans like a hand-written NOT IN.
        return or_(col.is_(None), not_(col == any_(_array_bind(col, ordered))))
    return or_(col.is_(None), col.not_in(_bind(col, ordered, expanding=True)))


def _equals(col: SqlColumn, value: str) -> SqlCondition:
    converted = _to_column_value(_type_of(col), value)
    if converted is None:
        return false()
    return col == _bind(col, converted)


def _not_equals(col: SqlColumn, value: str) -> SqlCondition:
    converted = _to_column_value(_type_of(col), value)
    if converted is None:
        return true()
    return or_(col.is_(None), col != _bind(col, converted))


# JSON ACL -------------------------------------------------------------------------------------


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

    @property
    def _from_objects(self) -> list[FromClause]:
        # The column's table, so select(func.count()).where(<this alone>) has a FROM.
        return list(self.column._from_objects)


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


# Join-table ACL -------------------------------------------------------------------------------


class _ArrayOf(ColumnElement[Any]):
    """PostgreSQL's ``ARRAY(SELECT ...)``: the subquery's rows as one array, computed once."""

    __visit_name__ = "watchword_array_of"
    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012  (SQLAlchemy's own class attribute)
        ("query", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, query: Select[Any], item_type: TypeEngine[Any]) -> None:
        self.query = query.scalar_subquery()
        self.type = ARRAY(Boolean() if isinstance(item_type, NullType) else item_type)


@compiles(_ArrayOf, "postgresql")
def _array_of_postgresql(element: _ArrayOf, compiler: SQLCompiler, **kw: object) -> str:
    return f"ARRAY{compiler.process(element.query, **kw)}"


@compiles(_ArrayOf)
def _array_of_other(element: _ArrayOf, compiler: SQLCompiler, **kw: object) -> str:
    raise UnsupportedPredicate(f"ARRAY(SELECT ...) is PostgreSQL's, not {compiler.dialect.name!r}")


class _WithIndexCopy(ColumnElement[bool]):
    """``exact``; on PostgreSQL ``(exact AND index_copy)``, ``index_copy`` being the same
    condition written so that the planner can serve it from indexes."""

    __visit_name__ = "watchword_with_index_copy"
    inherit_cache = True
    type = Boolean()
    _traverse_internals = [  # noqa: RUF012  (SQLAlchemy's own class attribute)
        ("exact", InternalTraversal.dp_clauseelement),
        ("index_copy", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, exact: SqlCondition, index_copy: SqlCondition) -> None:
        self.exact = exact
        self.index_copy = index_copy

    @property
    def _from_objects(self) -> list[FromClause]:
        return list(self.exact._from_objects)

    def self_group(self, against: OperatorType | None = None) -> ColumnElement[Any]:
        # Rendered in parentheses already (NOT and SQLite's "= 0" / "= 1" of a boolean
        # element apply to it without grouping it first).
        return self


@compiles(_WithIndexCopy)
def _with_index_copy_other(element: _WithIndexCopy, compiler: SQLCompiler, **kw: object) -> str:
    return f"({compiler.process(element.exact, **kw)})"


@compiles(_WithIndexCopy, "postgresql")
def _with_index_copy_postgresql(
    element: _WithIndexCopy, compiler: SQLCompiler, **kw: object
) -> str:
    return f"({compiler.process(and_(element.exact, element.index_copy), **kw)})"


def _granted_ids(
    node: AclHas, keys: Sequence[str], acl: AclTable, mapping: ColumnMapping
) -> Select[Any]:
    """``SELECT object_id FROM acl WHERE kind = ... AND key IN (...) AND action IN (...)``."""
    kind = acl.user_kind if node.kind is AclKind.USERS else acl.group_kind
    key_test = _equals(acl.key, keys[0]) if len(keys) == 1 else _in_list(acl.key, keys, mapping)
    return (
        select(acl.object_id)
        .where(
            acl.kind == _bind(acl.kind, kind),
            key_test,
            acl.action.in_(_bind(acl.action, [node.action, WILDCARD], expanding=True)),
        )
        # Uncorrelated even when the outer query also reads the ACL table.
        .correlate(None)
    )


class _Built:
    """SQL already built for the leaves of one residual (by node identity and polarity).

    The index copy reuses the same elements, hence the same bound parameters: a list is
    bound once however many times the statement mentions it.
    """

    def __init__(self) -> None:
        self.leaves: dict[tuple[int, bool], SqlCondition] = {}
        self.granted: dict[int, Select[Any]] = {}


def _acl(node: AclHas, m: ColumnMapping, index_copy: bool, built: _Built) -> SqlCondition:
    acl = m.acl
    if acl is None:
        raise UnsupportedPredicate(
            "the residual tests the object's ACL but the column mapping has no ACL; "
            "pass acl=JsonAcl(...), acl=AclTable(...) or acl=NO_ACL"
        )
    if isinstance(acl, NoAcl):
        return false()
    keys = m.user_ids(node.keys) if node.kind is AclKind.USERS else sorted(node.keys)
    if not keys:
        return false()
    if isinstance(acl, JsonAcl):
        col = acl.users if node.kind is AclKind.USERS else acl.groups
        if col is None:
            return false()
        # One containment per key (keys are the subject's groups, not its organizations).
        return or_(*(_JsonAclHas(col, key, node.action) for key in keys))
    if isinstance(acl, AclTable):
        id_col = m.column(Field.ID)
        granted = built.granted.get(id(node))
        if granted is None:
            granted = built.granted[id(node)] = _granted_ids(node, keys, acl, m)
        if index_copy:
            # An InitPlan: one array, then an index condition on the id column.
            return id_col == any_(_ArrayOf(granted, _type_of(id_col)))
        # A semi-join; under OR PostgreSQL evaluates it as a hashed subplan.
        return id_col.in_(granted)
    assert_never(acl)


def _leaf(node: In | Eq | IsNull | AclHas, m: ColumnMapping, negated: bool) -> SqlCondition:
    if isinstance(node, In):
        col = m.column(node.field)
        values = m.user_ids(node.values) if node.field is Field.OWNER else node.values
        return _not_in_list(col, values, m) if negated else _in_list(col, values, m)
    if isinstance(node, Eq):
        col = m.column(node.field)
        value: str | None = node.value
        if node.field is Field.OWNER and m.issuer is not None:
            ids = m.user_ids((node.value,))
            value = ids[0] if ids else None
        if value is None:
            return true() if negated else false()
        return _not_equals(col, value) if negated else _equals(col, value)
    if isinstance(node, IsNull):
        col = m.column(node.field)
        return col.is_not(None) if negated else col.is_(None)
    raise AssertionError(node)  # pragma: no cover - ACL tests are built by _acl


def _compile(
    node: Node, m: ColumnMapping, negated: bool, index_copy: bool, built: _Built
) -> SqlCondition:
    """``node`` (negated if ``negated``) with negations pushed down to NULL-safe leaves.

    ``index_copy``: a condition implied by that one, for PostgreSQL's index choice only:
    positive grant tests become ``id = ANY(ARRAY(SELECT ...))`` and negated leaves TRUE. No
    index serves a negated leaf, and an OR arm with one is not implied by the index
    conditions, so the planner would then re-test the arrays row by row. The formula being
    negation-free above its leaves, TRUE in place of a leaf only makes it weaker.
    """
    if isinstance(node, Const):
        return true() if node.value != negated else false()
    if isinstance(node, And | Or):
        parts = [_compile(n, m, negated, index_copy, built) for n in node.items]
        # De Morgan: a negated AND is an OR of negations, and the other way round.
        return and_(*parts) if isinstance(node, And) != negated else or_(*parts)
    if isinstance(node, Not):
        return _compile(node.item, m, not negated, index_copy, built)
    if negated and index_copy:
        return true()
    if isinstance(node, AclHas):
        if negated:
            # NULL (a NULL id, or a NULL object_id in the table) counts as "not granted".
            return not_(func.coalesce(_acl(node, m, False, built), false()))
        return _acl(node, m, index_copy, built)
    key = (id(node), negated)
    sql = built.leaves.get(key)
    if sql is None:
        sql = built.leaves[key] = _leaf(node, m, negated)
    return sql


def _tests_acl_under_or(node: Node, negated: bool = False) -> bool:
    """Whether a positive ACL test sits below an OR (after De Morgan) in ``node``."""
    if isinstance(node, And | Or):
        is_or = isinstance(node, Or) != negated
        return any(
            (is_or and _has_positive_acl(n, negated)) or _tests_acl_under_or(n, negated)
            for n in node.items
        )
    if isinstance(node, Not):
        return _tests_acl_under_or(node.item, not negated)
    return False


def _has_positive_acl(node: Node, negated: bool) -> bool:
    if isinstance(node, AclHas):
        return not negated
    if isinstance(node, And | Or):
        return any(_has_positive_acl(n, negated) for n in node.items)
    if isinstance(node, Not):
        return _has_positive_acl(node.item, not negated)
    return False


def _hoist_exclusions(node: Node) -> Node:
    """``x IN A OR (NOT x IN D AND rest)`` as ``NOT x IN D AND (x IN A OR rest)`` when A and D
    are disjoint (an organization is allowed or denied, not both), everywhere in ``node``.

    Equivalent (``x IN A`` implies ``NOT x IN D``), and better planned: the OR is then made
    of indexable tests only, so PostgreSQL's bitmap scan answers it without re-testing it on
    every row it fetches, and the negated test is one cheap filter beside it.
    """
    if isinstance(node, And):
        return all_of(*(_hoist_exclusions(n) for n in node.items))
    if isinstance(node, Not):
        return negate(_hoist_exclusions(node.item))
    if not isinstance(node, Or):
        return node
    items = [_hoist_exclusions(n) for n in node.items]
    if len(items) == 2:
        for allowed, other in (items, items[::-1]):
            if not (isinstance(allowed, In) and isinstance(other, And)):
                continue
            for i, part in enumerate(other.items):
                if (
                    isinstance(part, Not)
                    and isinstance(part.item, In)
                    and part.item.field is allowed.field
                    and not part.item.values & allowed.values
                ):
                    rest = all_of(*other.items[:i], *other.items[i + 1 :])
                    return all_of(part, any_of(allowed, rest))
    return any_of(*items)


def residual_to_sql(node: Node, columns: ColumnMapping) -> SqlCondition:
    """The SQLAlchemy condition selecting exactly the rows ``node`` accepts."""
    node = _hoist_exclusions(node)
    built = _Built()
    exact = _compile(node, columns, negated=False, index_copy=False, built=built)
    acl = columns.acl
    if not isinstance(acl, AclTable) or not acl.postgresql_index_copy:
        return exact
    # Top-level conjuncts stay separate quals for PostgreSQL; only those with an ACL test
    # below an OR need an indexable copy (a conjunct that is itself an ACL test becomes a
    # semi-join the planner handles well).
    conjuncts = node.items if isinstance(node, And) else (node,)
    copies = [
        _compile(c, columns, negated=False, index_copy=True, built=built)
        for c in conjuncts
        if _tests_acl_under_or(c)
    ]
    if not copies:
        return exact
    return _WithIndexCopy(exact, and_(*copies))


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
    # The outer FROM is a plain table list (subqueries of the condition come after it), so
    # the first WHERE keyword is the one we want to cut at.
    statement: Select[tuple[str]] = select(literal_column("1")).where(condition)
    compiled = statement.compile(
        dialect=_dialect(dialect, paramstyle), compile_kwargs={"render_postcompile": True}
    )
    _, _, where = str(compiled).partition("\nWHERE ")
    params = dict(compiled.params)
    order = tuple(compiled.positiontup) if compiled.positiontup else tuple(params)
    return RenderedSql(where, params, order)
