"""Residual predicates: what is left of a decision once subject, action and type are known.

A residual is a small tree over the object's fields (``id``, ``org_id``, ``project_id``,
``owner``) and its ACLs. Sets of ids are leaves (:class:`In`), so the node count does not
grow with the number of organizations or projects a subject belongs to.

Invariants this module owns:

- Trees are built through :func:`all_of`, :func:`any_of`, :func:`negate`, :func:`is_in`,
  :func:`equals` and :func:`acl_has`, which fold ``TRUE``/``FALSE`` away: a simplified tree
  contains ``TRUE``/``FALSE`` only as the whole tree.
- Two-valued semantics: a missing field (``None``) is in no set and equals no value, so
  ``Not(In(org_id, S))`` is true for an object without an organization. The SQL adapter
  must reproduce that (``org_id IS NULL OR org_id NOT IN (...)``).
- :func:`compile_predicate` and :func:`compile_filter` generate Python source from the tree;
  only field names from the closed :class:`Field` enum enter the source, every value is
  passed in by name, so no caller-controlled text is ever compiled.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias, assert_never, cast

from watchword.authz.model import WILDCARD, Object
from watchword.errors import InvalidInput, UnsupportedPredicate

__all__ = [
    "FALSE",
    "TRUE",
    "AclHas",
    "AclKind",
    "And",
    "Eq",
    "Field",
    "In",
    "IsNull",
    "Node",
    "Not",
    "Or",
    "acl_has",
    "all_of",
    "any_of",
    "compile_filter",
    "compile_predicate",
    "equals",
    "evaluate_residual",
    "is_in",
    "negate",
    "node_count",
    "residual_from_dict",
    "residual_to_dict",
]


class Field(enum.Enum):
    ID = "id"
    ORG_ID = "org_id"
    PROJECT_ID = "project_id"
    OWNER = "owner"


class AclKind(enum.Enum):
    USERS = "users"
    GROUPS = "groups"


@dataclass(frozen=True, slots=True)
class Const:
    value: bool


TRUE = Const(True)
FALSE = Const(False)


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


@dataclass(frozen=True, slots=True)
class In:
    field: Field
    values: frozenset[str]


@dataclass(frozen=True, slots=True)
class Eq:
    field: Field
    value: str


@dataclass(frozen=True, slots=True)
class IsNull:
    field: Field


@dataclass(frozen=True, slots=True)
class AclHas:
    """The object's ACL of ``kind`` has an entry for one of ``keys`` holding ``action`` or ``*``."""

    kind: AclKind
    keys: frozenset[str]
    action: str


Node: TypeAlias = Const | And | Or | Not | In | Eq | IsNull | AclHas


# Constructors that simplify ------------------------------------------------------------


def all_of(*nodes: Node) -> Node:
    items: list[Node] = []
    for node in nodes:
        if node == TRUE:
            continue
        if node == FALSE:
            return FALSE
        items.extend(node.items if isinstance(node, And) else (node,))
    if not items:
        return TRUE
    return items[0] if len(items) == 1 else And(tuple(items))


def any_of(*nodes: Node) -> Node:
    items: list[Node] = []
    for node in nodes:
        if node == FALSE:
            continue
        if node == TRUE:
            return TRUE
        items.extend(node.items if isinstance(node, Or) else (node,))
    if not items:
        return FALSE
    return items[0] if len(items) == 1 else Or(tuple(items))


def negate(node: Node) -> Node:
    if isinstance(node, Const):
        return FALSE if node.value else TRUE
    if isinstance(node, Not):
        return node.item
    return Not(node)


def is_in(field: Field, values: Iterable[str]) -> Node:
    frozen = frozenset(values)
    return In(field, frozen) if frozen else FALSE


def equals(field: Field, value: str) -> Node:
    return Eq(field, value)


def acl_has(kind: AclKind, keys: Iterable[str], action: str) -> Node:
    frozen = frozenset(keys)
    return AclHas(kind, frozen, action) if frozen else FALSE


def node_count(node: Node) -> int:
    """Number of nodes in the tree (a set leaf counts once, whatever its size)."""
    if isinstance(node, And | Or):
        return 1 + sum(node_count(n) for n in node.items)
    if isinstance(node, Not):
        return 1 + node_count(node.item)
    return 1


# Python evaluation ----------------------------------------------------------------------


def _acl_of(obj: Object, kind: AclKind) -> Mapping[str, Collection[str]]:
    if kind is AclKind.USERS:
        return obj.acl_users
    if kind is AclKind.GROUPS:
        return obj.acl_groups
    assert_never(kind)


def _acl_any(acl: Mapping[str, Collection[str]], keys: frozenset[str], action: str) -> bool:
    if not acl:
        return False
    if len(acl) <= len(keys):
        return any(k in keys and (action in v or WILDCARD in v) for k, v in acl.items())
    for key in keys:
        actions = acl.get(key)
        if actions is not None and (action in actions or WILDCARD in actions):
            return True
    return False


def evaluate_residual(node: Node, obj: Object) -> bool:
    """Interpret ``node`` for ``obj`` (the slow, obvious path; see :func:`compile_predicate`)."""
    if isinstance(node, Const):
        return node.value
    if isinstance(node, And):
        return all(evaluate_residual(n, obj) for n in node.items)
    if isinstance(node, Or):
        return any(evaluate_residual(n, obj) for n in node.items)
    if isinstance(node, Not):
        return not evaluate_residual(node.item, obj)
    if isinstance(node, In):
        return getattr(obj, node.field.value) in node.values
    if isinstance(node, Eq):
        return bool(getattr(obj, node.field.value) == node.value)
    if isinstance(node, IsNull):
        return getattr(obj, node.field.value) is None
    if isinstance(node, AclHas):
        return _acl_any(_acl_of(obj, node.kind), node.keys, node.action)
    assert_never(node)


def _field_name(field: object) -> str:
    """The attribute name for ``field``, which must be a :class:`Field` member.

    Nodes are plain dataclasses that anyone can build, so the type annotation alone does not
    keep other text out of the generated source: check at the one place it enters.
    """
    if not isinstance(field, Field):
        raise UnsupportedPredicate(f"unknown field {field!r}")
    return field.value


def _acl_attr(kind: object) -> str:
    if not isinstance(kind, AclKind):
        raise UnsupportedPredicate(f"unknown ACL kind {kind!r}")
    return f"acl_{kind.value}"


class _Source:
    """Collects the constants a generated expression refers to by name."""

    def __init__(self) -> None:
        self.names: dict[str, object] = {"_acl_any": _acl_any, "_WILD": WILDCARD}

    def bind(self, value: object) -> str:
        name = f"_c{len(self.names)}"
        self.names[name] = value
        return name

    def expr(self, node: Node) -> str:
        if isinstance(node, Const):
            return "True" if node.value else "False"
        if isinstance(node, And):
            return "(" + " and ".join(self.expr(n) for n in node.items) + ")"
        if isinstance(node, Or):
            return "(" + " or ".join(self.expr(n) for n in node.items) + ")"
        if isinstance(node, Not):
            return f"(not {self.expr(node.item)})"
        if isinstance(node, In):
            return f"(o.{_field_name(node.field)} in {self.bind(node.values)})"
        if isinstance(node, Eq):
            return f"(o.{_field_name(node.field)} == {self.bind(node.value)})"
        if isinstance(node, IsNull):
            return f"(o.{_field_name(node.field)} is None)"
        if isinstance(node, AclHas):
            acl = f"o.{_acl_attr(node.kind)}"
            action = self.bind(node.action)
            if len(node.keys) == 1:
                (key,) = node.keys
                return (
                    f"((_v := {acl}.get({self.bind(key)})) is not None"
                    f" and ({action} in _v or _WILD in _v))"
                )
            return f"({acl} and _acl_any({acl}, {self.bind(node.keys)}, {action}))"
        assert_never(node)


def _wrong_type(expected: str) -> Callable[[Object], bool]:
    def fail(obj: Object) -> bool:
        raise InvalidInput(
            f"all objects must be of type {expected!r}; found {obj.type!r} (id {obj.id!r})"
        )

    return fail


def _generate(source: str, names: dict[str, object], entry: str) -> object:
    namespace = dict(names)
    # Safe: the source is built only from fixed templates and Field enum values; every
    # value from the policy or the caller is bound by name in ``namespace``.
    exec(compile(source, "<watchword.authz.residual>", "exec"), namespace)  # noqa: S102
    return namespace[entry]


def compile_predicate(node: Node) -> Callable[[Object], bool]:
    """A fast function ``obj -> bool`` equivalent to :func:`evaluate_residual`."""
    src = _Source()
    body = src.expr(node)
    fn = _generate(f"def _pred(o):\n    return bool({body})\n", src.names, "_pred")
    return cast("Callable[[Object], bool]", fn)


def compile_filter(node: Node, type_name: str) -> Callable[[Sequence[Object]], list[Object]]:
    """A fast function keeping the objects that satisfy ``node``; raises on another type."""
    src = _Source()
    body = src.expr(node)
    type_const = src.bind(type_name)
    wrong = src.bind(_wrong_type(type_name))
    source = (
        "def _filter(objs):\n"
        f"    return [o for o in objs if (o.type == {type_const} or {wrong}(o)) and {body}]\n"
    )
    fn = _generate(source, src.names, "_filter")
    return cast("Callable[[Sequence[Object]], list[Object]]", fn)


# JSON form ------------------------------------------------------------------------------


def residual_to_dict(node: Node) -> dict[str, object]:
    """JSON predicate: ``{"op": ..., ...}``; sets are sorted lists."""
    if isinstance(node, Const):
        return {"op": "true" if node.value else "false"}
    if isinstance(node, And | Or):
        return {
            "op": "and" if isinstance(node, And) else "or",
            "args": [residual_to_dict(n) for n in node.items],
        }
    if isinstance(node, Not):
        return {"op": "not", "arg": residual_to_dict(node.item)}
    if isinstance(node, In):
        return {"op": "in", "field": node.field.value, "values": sorted(node.values)}
    if isinstance(node, Eq):
        return {"op": "eq", "field": node.field.value, "value": node.value}
    if isinstance(node, IsNull):
        return {"op": "is_null", "field": node.field.value}
    if isinstance(node, AclHas):
        return {
            "op": "acl_has",
            "kind": node.kind.value,
            "keys": sorted(node.keys),
            "action": node.action,
        }
    assert_never(node)


def _str(data: Mapping[str, object], key: str, pointer: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise InvalidInput(f"{key!r} must be a string", pointer=f"{pointer}/{key}")
    return value


def _strs(data: Mapping[str, object], key: str, pointer: str) -> frozenset[str]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{key!r} must be a list of strings", pointer=f"{pointer}/{key}")
    return frozenset(value)


def _field(data: Mapping[str, object], pointer: str) -> Field:
    name = _str(data, "field", pointer)
    try:
        return Field(name)
    except ValueError:
        raise UnsupportedPredicate(f"unknown field {name!r}", pointer=f"{pointer}/field") from None


def residual_from_dict(data: object, pointer: str = "") -> Node:
    """Parse the JSON form; an unknown operator or field raises :class:`UnsupportedPredicate`."""
    if not isinstance(data, dict):
        raise InvalidInput("a predicate must be an object", pointer=pointer or "/")
    op = _str(data, "op", pointer)
    if op in ("true", "false"):
        return TRUE if op == "true" else FALSE
    if op in ("and", "or"):
        args = data.get("args")
        if not isinstance(args, list):
            raise InvalidInput("'args' must be a list", pointer=f"{pointer}/args")
        items = [residual_from_dict(a, f"{pointer}/args/{i}") for i, a in enumerate(args)]
        return all_of(*items) if op == "and" else any_of(*items)
    if op == "not":
        return negate(residual_from_dict(data.get("arg"), f"{pointer}/arg"))
    if op == "in":
        return is_in(_field(data, pointer), _strs(data, "values", pointer))
    if op == "eq":
        return equals(_field(data, pointer), _str(data, "value", pointer))
    if op == "is_null":
        return IsNull(_field(data, pointer))
    if op == "acl_has":
        kind_name = _str(data, "kind", pointer)
        try:
            kind = AclKind(kind_name)
        except ValueError:
            raise UnsupportedPredicate(
                f"unknown ACL kind {kind_name!r}", pointer=f"{pointer}/kind"
            ) from None
        return acl_has(kind, _strs(data, "keys", pointer), _str(data, "action", pointer))
    raise UnsupportedPredicate(f"unknown operator {op!r}", pointer=f"{pointer}/op")
