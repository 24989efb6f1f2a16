"""The application's own objects, read through a declared mapping instead of copied into
:class:`~watchword.authz.model.Object`.

An :class:`ObjectMapping` says where one kind of object keeps what a check reads: its
resource type (fixed, or read from the object), id, organization, project, owner and ACLs.
Each of those is an attribute name, a key name (``items=True``, for dicts), or a function
of the object. :class:`ObjectMappings` holds one mapping per Python class (looked up along
the class's MRO, so a mapping for a base class serves its subclasses).

A mapped object is read through an :class:`ObjectView`: a small wrapper that reads each
field when a check asks for it (a check decided by the organization never reads the owner
or the ACLs) and converts it as the rules below say. Nothing is copied ahead.

Rules (the contract; check, filter and SQL apply the same ones):

- Ids (id, organization, project) are compared as text: a ``str`` as it is, any other value
  (``int``, ``uuid.UUID``) by ``str(value)``, which is also how SQL compares them against
  integer and UUID columns (:mod:`.sql`). ``None`` means "not in an organization/project".
- The owner is a subject: an ``(issuer, id)`` pair; or, with ``issuer=`` set on the
  mapping, the application's own user id (the subject id in that issuer); or, without it,
  a subject key string ``"<issuer>|<id>"``.
- ACLs are mappings ``{grantee: [action, ...]}`` (``*`` for every action). User grantees
  follow the owner's rule (``(issuer, id)`` pairs, app user ids with ``issuer=`` set, else
  subject keys); group grantees are group ids.
- A field the mapping does not name is empty: no organization, no project, no owner, no
  ACL entries.
"""

from __future__ import annotations

import builtins
import operator
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from watchword.authz.model import EMPTY_ACL, Object, subject_key
from watchword.errors import InvalidInput

__all__ = ["Getter", "ObjectMapping", "ObjectMappings", "ObjectView", "as_object"]

Getter: TypeAlias = "str | Callable[[Any], object]"
"""Where a field lives: an attribute name (a key name with ``items=True``) or a function."""

_Read: TypeAlias = Callable[[Any], object]
_ACL: TypeAlias = Mapping[str, Collection[str]]


def _none(_: object) -> None:
    return None


def _reader(getter: Getter | None, items: bool) -> _Read:
    if getter is None:
        return _none
    if callable(getter):
        return getter
    if not isinstance(getter, str) or not getter:
        raise InvalidInput(
            f"a field must be named by a non-empty string or a function, not {getter!r}"
        )
    if items:
        return lambda obj: obj.get(getter)
    return operator.attrgetter(getter)


def _text(value: object) -> str | None:
    if value is None or type(value) is str:
        return value
    if isinstance(value, int | uuid.UUID) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):  # a str subclass (an enum member's value, say)
        return str.__str__(value)
    raise InvalidInput(f"an id must be a string, an integer or a UUID, not {type(value).__name__}")


def _subject(value: object, issuer: str | None) -> str | None:
    """A user grantee or owner as a subject key (see the module rules)."""
    if value is None:
        return None
    if value.__class__ is str and value:  # the common case, first
        return value if issuer is None else f"{issuer}|{value}"
    if isinstance(value, tuple):
        if len(value) != 2 or not isinstance(value[0], str) or not value[0] or "|" in value[0]:
            # An issuer with "|" names no subject, and its key could equal another's.
            raise InvalidInput(f"a subject pair is (issuer without '|', id), not {value!r}")
        return subject_key(value[0], _subject_id(value[1]))
    text = _subject_id(value)
    return text if issuer is None else f"{issuer}|{text}"


def _subject_id(value: object) -> str:
    text = _text(value)
    if not text:  # None or "": no subject has it (a subject id is never empty)
        raise InvalidInput(f"a subject id must not be empty nor None, not {value!r}")
    return text


@dataclass(frozen=True, slots=True)
class ObjectMapping:
    """How to read one kind of application object (see the module rules).

    ``type`` is the resource type of every object read through this mapping; give
    ``type_from`` instead when the object names its own type. ``issuer``: owner and ACL
    user grantees are that issuer's user ids (the application's own user ids).
    """

    type: str | None = None
    id: Getter = "id"
    organization: Getter | None = None
    project: Getter | None = None
    owner: Getter | None = None
    acl_users: Getter | None = None
    acl_groups: Getter | None = None
    issuer: str | None = None
    type_from: Getter | None = None
    items: bool = False
    view_class: builtins.type[ObjectView] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.type is None) == (self.type_from is None):
            raise InvalidInput("an object mapping needs exactly one of 'type' and 'type_from'")
        if self.issuer is not None and (not self.issuer or "|" in self.issuer):
            raise InvalidInput("'issuer' must be a non-empty string without '|'")
        object.__setattr__(self, "view_class", _view_class(self))

    def view(self, obj: object) -> ObjectView:
        """``obj`` read through this mapping (nothing is read yet)."""
        return self.view_class(obj)


_ACTION_LISTS: Final = frozenset({list, tuple, set, frozenset})


def _acl(value: object, users: bool, issuer: str | None) -> _ACL:
    if value is None:
        return EMPTY_ACL
    if value.__class__ is not dict and not isinstance(value, Mapping):
        raise InvalidInput(
            f"an ACL must be a mapping of grantee to actions, not {type(value).__name__}"
        )
    for actions in value.values():
        if actions.__class__ not in _ACTION_LISTS and isinstance(actions, str | bytes):
            # "read,delete" would match "read" by substring: action lists only.
            raise InvalidInput(f"ACL actions must be a list of names, not {actions!r}")
    if not users:
        if all(type(k) is str for k in value):
            return value
        return {str(k): v for k, v in value.items()}
    if issuer is None:
        if all(type(k) is str for k in value):
            return value
        return {_subject(k, None): v for k, v in value.items()}  # type: ignore[misc]
    return _IssuerKeyed(value, issuer)


class _IssuerKeyed(Mapping[str, Collection[str]]):
    """A user ACL keyed by the application's user ids of one issuer, seen keyed by subject
    keys: a look-up strips the issuer and finds text keys directly; a miss walks the keys
    once to see whether some are not text (ints, UUIDs, pairs), and only then converts
    them all; iterating converts every key."""

    __slots__ = ("_converted", "_prefix", "_raw")

    def __init__(self, raw: Mapping[Any, Collection[str]], issuer: str) -> None:
        self._raw = raw
        self._prefix = f"{issuer}|"
        self._converted: dict[str, Collection[str]] | None = None

    def _all(self) -> dict[str, Collection[str]]:
        done = self._converted
        if done is None:
            issuer = self._prefix[:-1]
            done = self._converted = {
                _subject(k, issuer): v  # type: ignore[misc]
                for k, v in self._raw.items()
            }
        return done

    def get(self, key: str, default: Any = None) -> Any:
        prefix = self._prefix
        raw = self._raw
        if key.startswith(prefix):
            found = raw.get(key[len(prefix) :])
            if found is not None:
                return found
        for k in raw:
            if k.__class__ is not str:  # ints, UUIDs, (issuer, id) pairs: convert them all
                return self._all().get(key, default)
        return default

    def __getitem__(self, key: str) -> Collection[str]:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found  # type: ignore[no-any-return]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._raw)


class ObjectView:
    """An application object as a check sees it: the fields of :class:`Object`, read from
    ``target`` when asked (see :class:`ObjectMapping`; each mapping has its own subclass,
    whose properties read the fields it names). ``target`` is the object itself."""

    __slots__ = ("target",)
    mapping: ObjectMapping
    type: str
    id: str
    org_id: str | None
    project_id: str | None
    owner: str | None
    acl_users: _ACL
    acl_groups: _ACL

    def __init__(self, target: object) -> None:
        self.target = target

    def acl_entry_count(self) -> int:
        return len(self.acl_users) + len(self.acl_groups)

    def to_object(self) -> Object:
        """A copy as an :class:`Object` (for a remote server, a decision log, a test)."""
        return Object(
            type=self.type,
            id=self.id,
            org_id=self.org_id,
            project_id=self.project_id,
            owner=self.owner,
            acl_users=self.acl_users,
            acl_groups=self.acl_groups,
        )

    def to_dict(self) -> dict[str, object]:
        return self.to_object().to_dict()

    def __repr__(self) -> str:
        return f"ObjectView({type(self.target).__name__})"


def _text_field(read: _Read) -> property:
    def get(self: ObjectView) -> str | None:
        value = read(self.target)
        if value is None or value.__class__ is str:
            return value
        return _text(value)

    return property(get)


def _view_class(m: ObjectMapping) -> type[ObjectView]:
    """A subclass of :class:`ObjectView` whose properties read what ``m`` names (a fixed
    type is a class attribute: nothing to read)."""
    items = m.items
    issuer = m.issuer
    read_id = _reader(m.id, items)
    read_owner = _reader(m.owner, items)
    read_users = _reader(m.acl_users, items)
    read_groups = _reader(m.acl_groups, items)
    namespace: dict[str, object] = {"__slots__": (), "mapping": m}
    if m.type is not None:
        namespace["type"] = m.type
    else:
        read_type = _reader(m.type_from, items)

        def type_(self: ObjectView) -> str:
            value = read_type(self.target)
            if type(value) is not str or not value:
                raise InvalidInput(f"the object's type must be a non-empty string, not {value!r}")
            return value

        namespace["type"] = property(type_)

    def id_(self: ObjectView) -> str:
        value = _text(read_id(self.target))
        if value is None:
            raise InvalidInput("the object has no id")
        return value

    namespace["id"] = property(id_)
    namespace["org_id"] = (
        None if m.organization is None else _text_field(_reader(m.organization, items))
    )
    namespace["project_id"] = None if m.project is None else _text_field(_reader(m.project, items))
    if m.owner is None:
        namespace["owner"] = None
    else:
        namespace["owner"] = property(lambda self: _subject(read_owner(self.target), issuer))
    if m.acl_users is None:
        namespace["acl_users"] = EMPTY_ACL
    else:
        namespace["acl_users"] = property(lambda self: _acl(read_users(self.target), True, issuer))
    if m.acl_groups is None:
        namespace["acl_groups"] = EMPTY_ACL
    else:
        namespace["acl_groups"] = property(lambda self: _acl(read_groups(self.target), False, None))
    return type("MappedObjectView", (ObjectView,), namespace)


_UNMAPPED: Final = object()


class ObjectMappings:
    """One :class:`ObjectMapping` per application class; :meth:`view` reads any of them.

    :class:`Object` values pass through unchanged, so a list may mix both.
    """

    __slots__ = ("_by_class", "_views")

    def __init__(self, mappings: Mapping[type, ObjectMapping] | None = None) -> None:
        self._by_class: dict[type, ObjectMapping] = {}
        self._views: dict[type, type[ObjectView] | None] = {}
        for cls, mapping in (mappings or {}).items():
            self.register(cls, mapping)

    def register(self, cls: type, mapping: ObjectMapping) -> None:
        if not isinstance(cls, type) or not isinstance(mapping, ObjectMapping):
            raise InvalidInput("object mappings are given as {class: ObjectMapping(...)}")
        self._by_class[cls] = mapping
        self._views.clear()

    def for_class(self, cls: type) -> ObjectMapping:
        """The mapping for ``cls`` or its nearest mapped base class."""
        return self._view_class(cls).mapping

    def _view_class(self, cls: type) -> type[ObjectView]:
        found = self._views.get(cls, _UNMAPPED)
        if found is _UNMAPPED:
            mapping = next((self._by_class[c] for c in cls.__mro__ if c in self._by_class), None)
            found = self._views[cls] = None if mapping is None else mapping.view_class
        if found is None:
            raise InvalidInput(
                f"no object mapping for {cls.__name__}; declare one with "
                f"ObjectMappings({{{cls.__name__}: ObjectMapping(type=..., ...)}})"
            )
        return found  # type: ignore[return-value]

    def view(self, obj: object) -> Object | ObjectView:
        cls = obj.__class__
        if cls is Object or isinstance(obj, ObjectView):
            return obj  # type: ignore[return-value]
        found = self._views.get(cls)
        if found is not None:
            return found(obj)
        return self._view_class(cls)(obj)

    def __repr__(self) -> str:
        return f"ObjectMappings({', '.join(c.__name__ for c in self._by_class)})"


def as_object(obj: object, mappings: ObjectMappings | None = None) -> Object:
    """``obj`` as an :class:`Object` (copied out of an application object if need be)."""
    if type(obj) is Object:
        return obj
    if isinstance(obj, ObjectView):
        return obj.to_object()
    if mappings is None:
        raise InvalidInput(
            f"{type(obj).__name__} is not an Object and no object mappings are given"
        )
    view = mappings.view(obj)
    return view if isinstance(view, Object) else view.to_object()
