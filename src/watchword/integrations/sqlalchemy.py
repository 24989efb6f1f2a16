"""Authorize SQLAlchemy queries over the application's own mapped classes.

``authorized(select(Cluster), engine, alice, "read")`` adds to the statement the condition
that keeps exactly the rows ``engine.check(alice, "read", row)`` would allow, so that the
database filters (and pages, and counts) what the caller may see. The columns come from the
same :class:`~watchword.authz.mapping.ObjectMapping` that checks read the class's objects
through (``Engine(objects=ObjectMappings({Cluster: ObjectMapping(...)}))``): each field the
mapping names by attribute must be a column attribute of the class.

Rules:

- The mapping must give a fixed resource ``type`` (one class, one type): the condition is
  prepared for that type.
- The ACL: a mapping whose ``acl_users`` / ``acl_groups`` name JSON columns is read as
  :class:`~watchword.authz.sql.JsonAcl` (PostgreSQL JSONB containment, served by a GIN
  index; SQLite ``json_each``); ACLs in a join table (a relationship, or rows read by a
  function) are given as ``acl=AclTable(...)``; a mapping naming no ACL has none.
- Owner and user-ACL keys follow the mapping's ``issuer`` (application user ids) on both
  sides, so check, filter and SQL agree (``tests/authz/test_mapping_equivalence.py``).
- The condition is the one :meth:`~watchword.authz.evaluate.Prepared.to_sql` builds, with
  its index use (``benchmarks/authz/sql_acl.md``; ``benchmarks/authz/sql_orm.md`` repeats it
  through this function).
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, inspect, null
from sqlalchemy.orm import ColumnProperty, Mapper
from sqlalchemy.sql import Join, TableClause

from watchword.authz.compile import CompiledSubject
from watchword.authz.engine import Engine
from watchword.authz.mapping import Getter, ObjectMapping, ObjectMappings
from watchword.authz.sql import NO_ACL, AclTable, ColumnMapping, JsonAcl, NoAcl, SqlColumn
from watchword.errors import InvalidInput

__all__ = ["authorized", "column_mapping", "filtered_rows"]

S = TypeVar("S", bound=Select[*tuple[Any, ...]])


def _mapper(entity: type) -> Mapper[Any]:
    mapper: object = inspect(entity, raiseerr=False)
    if not isinstance(mapper, Mapper):
        raise InvalidInput(f"{getattr(entity, '__name__', entity)!r} is not a mapped class")
    return mapper


def _column(entity: type, mapper: Mapper[Any], what: str, getter: Getter | None) -> SqlColumn:
    if getter is None:
        # Not named: empty for every row, as a check reads it (no organization, owner...):
        # NULL, which no IN list holds and IS NULL matches.
        return null()
    if not isinstance(getter, str):
        raise InvalidInput(
            f"the mapping of {entity.__name__} reads {what!r} with a function; SQL needs a "
            "column: name the attribute in the ObjectMapping"
        )
    prop = mapper.attrs.get(getter)
    if not isinstance(prop, ColumnProperty):
        raise InvalidInput(
            f"{entity.__name__}.{getter} (the mapping's {what!r}) is not a column attribute"
            + ("; give ACLs kept in a join table as acl=AclTable(...)" if "acl" in what else "")
        )
    column: SqlColumn = getattr(entity, getter)
    return column


def column_mapping(
    entity: type,
    mapping: ObjectMapping,
    *,
    acl: JsonAcl | AclTable | NoAcl | None = None,
    array_params: bool = False,
) -> ColumnMapping:
    """The :class:`ColumnMapping` of ``entity``'s columns that ``mapping`` names."""
    mapper = _mapper(entity)
    if acl is None:
        users = (
            None
            if mapping.acl_users is None
            else _column(entity, mapper, "acl_users", mapping.acl_users)
        )
        groups = (
            None
            if mapping.acl_groups is None
            else _column(entity, mapper, "acl_groups", mapping.acl_groups)
        )
        acl = NO_ACL if users is None and groups is None else JsonAcl(users=users, groups=groups)
    return ColumnMapping(
        id=_column(entity, mapper, "id", mapping.id),
        org_id=_column(entity, mapper, "organization", mapping.organization),
        project_id=_column(entity, mapper, "project", mapping.project),
        owner=_column(entity, mapper, "owner", mapping.owner),
        acl=acl,
        array_params=array_params,
        issuer=mapping.issuer,
    )


def _selected_entity(stmt: Select[Any]) -> type:
    """The one mapped class ``stmt`` selects (``select(Cluster)``, ``select(Cluster.id)``,
    ``select(func.count(Cluster.id))``); a statement selecting several, or an alias, must
    say which rows to filter with ``entity=`` (never a guess: filtering another class's rows
    would return this one's unfiltered)."""
    entities = {d.get("entity") for d in stmt.column_descriptions} - {None}
    aliased = any(d.get("aliased") for d in stmt.column_descriptions)
    if len(entities) != 1 or aliased:
        through = ", through an alias" if aliased else ""
        raise InvalidInput(
            "cannot tell which mapped class's rows to filter (the statement selects "
            f"{len(entities)} classes{through}); pass entity=<class>"
        )
    (entity,) = entities
    if not isinstance(entity, type):
        raise InvalidInput("the statement selects no mapped class; pass entity=<class>")
    return entity


def _reads(from_: object, table: object) -> bool:
    """Whether ``from_`` is ``table`` or a join of it (an alias of it is another FROM)."""
    if isinstance(from_, TableClause) and from_._deannotate() is table:  # ORM-annotated
        return True
    if isinstance(from_, Join):
        return _reads(from_.left, table) or _reads(from_.right, table)
    return False


def _require_selected_from(stmt: Select[Any], entity: type) -> None:
    """``entity``'s table must be one the statement reads (else the condition would add a
    cartesian product and filter nothing the statement returns)."""
    table = _mapper(entity).local_table
    if any(_reads(from_, table) for from_ in stmt.get_final_froms()):
        return
    raise InvalidInput(
        f"the statement does not read {entity.__name__}'s table {table!s} (an alias of it is "
        "not filtered: select the class itself)"
    )


def filtered_rows(
    stmt: Select[Any],
    objects: ObjectMappings | None,
    *,
    entity: type | None = None,
    mapping: ObjectMapping | None = None,
    acl: JsonAcl | AclTable | NoAcl | None = None,
    array_params: bool = False,
) -> tuple[str, ColumnMapping]:
    """The resource type and the columns of the rows ``stmt`` selects that a condition
    must filter: those of ``entity`` (by default the one class the statement selects),
    read through ``mapping`` (by default the one ``objects`` holds for the class).
    :class:`~watchword.errors.InvalidInput` for a statement or mapping SQL cannot follow."""
    target = entity if entity is not None else _selected_entity(stmt)
    _require_selected_from(stmt, target)
    if mapping is None:
        if objects is None:
            raise InvalidInput(
                "no mapping given and no object mappings to find one in; pass mapping=..., "
                "or give objects=ObjectMappings({...}) to the engine (or the guard)"
            )
        mapping = objects.for_class(target)
    if mapping.type is None:
        raise InvalidInput(
            f"the mapping of {target.__name__} reads the type from each object; SQL needs a "
            "fixed type=..."
        )
    return mapping.type, column_mapping(target, mapping, acl=acl, array_params=array_params)


def authorized(
    stmt: S,
    engine: Engine,
    subject: CompiledSubject,
    action: str,
    *,
    entity: type | None = None,
    mapping: ObjectMapping | None = None,
    acl: JsonAcl | AclTable | NoAcl | None = None,
    array_params: bool = False,
) -> S:
    """``stmt`` keeping only the rows of ``entity`` (by default the statement's first
    selected class) on which ``subject`` may do ``action``.

    ``mapping`` defaults to ``engine.objects.for_class(entity)``. Raises
    :class:`~watchword.errors.StaleSubject` when ``subject`` was compiled against an older
    policy, :class:`~watchword.errors.UnknownAction` / ``UnknownResourceType`` as a check
    would, and :class:`~watchword.errors.InvalidInput` for a mapping SQL cannot follow.
    """
    type_name, columns = filtered_rows(
        stmt, engine.objects, entity=entity, mapping=mapping, acl=acl, array_params=array_params
    )
    prepared = engine.prepare(subject, action, type_name)
    return stmt.where(prepared.to_sql(columns))
