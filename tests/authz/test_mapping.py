"""The application's own objects through a declared mapping: what is read, how it converts,
what the engine accepts and returns, and the errors for what cannot work."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import JSON, ForeignKey, Integer, String, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, aliased, mapped_column, relationship

from watchword.authz import (
    Engine,
    Object,
    ObjectMapping,
    ObjectMappings,
    ObjectView,
    as_object,
    parse_policy,
    parse_subject,
)
from watchword.errors import InvalidInput, UnknownResourceType
from watchword.integrations.sqlalchemy import authorized, column_mapping

ISSUER = "https://app.example"
CLUSTERS = "compute:clusters"
BUCKETS = "storage:buckets"

POLICY = parse_policy(
    {
        "resource_types": [
            {"name": CLUSTERS, "actions": ["read", "update", "delete"]},
            {"name": BUCKETS, "actions": ["read", "delete"]},
        ],
        "roles": [
            {
                "name": "member",
                "permissions": {
                    "organization": [{"resource_type": "*", "actions": ["read"]}],
                    "owner": [{"resource_type": "*", "actions": ["*"]}],
                },
            },
        ],
    }
)


def subject(user: str = "alice", issuer: str = ISSUER, orgs: tuple[str, ...] = ("acme",)) -> Any:
    return parse_subject(
        {"issuer": issuer, "id": user, "organizations": {o: ["member"] for o in orgs}}
    )


@dataclass
class Cluster:
    id: int
    org: str | None
    owner_id: str | None = None
    shares: dict[Any, list[str]] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)


@dataclass
class SpecialCluster(Cluster):
    pass


@dataclass
class Bucket:
    key: uuid.UUID
    org: str | None
    owner: tuple[str, str] | None = None


CLUSTER = ObjectMapping(
    type=CLUSTERS, organization="org", owner="owner_id", acl_users="shares", issuer=ISSUER
)
BUCKET = ObjectMapping(type=BUCKETS, id="key", organization="org", owner="owner")
DOCS = ObjectMapping(type_from="kind", organization="org", owner="owner", items=True)


def engine() -> Engine:
    return Engine(POLICY, objects=ObjectMappings({Cluster: CLUSTER, Bucket: BUCKET, dict: DOCS}))


def test_a_mapped_object_answers_as_the_object_it_stands_for() -> None:
    e = engine()
    alice, bob, carol = (
        e.compile(subject()),
        e.compile(subject("bob")),
        e.compile(subject("carol", orgs=("other",))),
    )
    c = Cluster(7, "acme", owner_id="alice", shares={"carol": ["update"]})
    same = Object(
        CLUSTERS, "7", "acme", owner=f"{ISSUER}|alice", acl_users={f"{ISSUER}|carol": ["update"]}
    )
    for who in (alice, bob, carol):
        for action in ("read", "update", "delete"):
            assert e.check(who, action, c) == e.check(who, action, same), (who.key, action)
    assert e.check(alice, "delete", c).allowed  # the owner, by the app's own user id
    assert not e.check(bob, "delete", c).allowed
    assert e.check(carol, "update", c).allowed  # the ACL, keyed by the app's user id
    assert as_object(c, e.objects) == same


def test_the_same_user_id_from_another_issuer_owns_nothing() -> None:
    e = engine()
    elsewhere = e.compile(subject("alice", issuer="https://other.example", orgs=()))
    c = Cluster(1, None, owner_id="alice", shares={"alice": ["*"]})
    assert not e.check(elsewhere, "delete", c).allowed
    assert not e.check(elsewhere, "read", c).allowed


def test_ids_convert_to_text_and_owner_pairs_name_a_subject() -> None:
    e = engine()
    key = uuid.UUID("12345678-1234-5678-1234-567812345678")
    b = Bucket(key, "acme", owner=(ISSUER, "bob"))
    view = e.view(b)
    assert isinstance(view, ObjectView)
    assert (view.id, view.owner) == (str(key), f"{ISSUER}|bob")
    # Owner rights come from the owner block of a role held where the object is.
    assert e.check(e.compile(subject("bob")), "delete", b).allowed
    assert not e.check(e.compile(subject("alice")), "delete", b).allowed
    assert not e.check(e.compile(subject("bob", orgs=())), "delete", b).allowed


def test_dicts_with_their_own_type_read_by_key() -> None:
    e = engine()
    doc = {"kind": BUCKETS, "id": 3, "org": "acme", "owner": None}
    alice = e.compile(subject())
    assert e.check(alice, "read", doc).allowed
    assert not e.check(alice, "delete", doc).allowed
    with pytest.raises(UnknownResourceType):
        e.check(alice, "read", {"kind": "nope:things", "id": 1})
    with pytest.raises(InvalidInput, match="type must be a non-empty string"):
        e.check(alice, "read", {"id": 1})


def test_a_subclass_uses_its_base_class_mapping() -> None:
    e = engine()
    alice = e.compile(subject())
    assert e.check(alice, "read", SpecialCluster(1, "acme")).allowed


def test_a_check_decided_by_the_organization_reads_no_owner_nor_acl() -> None:
    read: list[str] = []

    def reading(name: str) -> Any:
        def read_it(obj: object) -> object:
            read.append(name)
            return getattr(obj, name)

        return read_it

    mapping = ObjectMapping(
        type=CLUSTERS,
        organization=reading("org"),
        owner=reading("owner_id"),
        acl_users=reading("shares"),
        issuer=ISSUER,
    )
    e = Engine(POLICY, objects=ObjectMappings({Cluster: mapping}))
    alice = e.compile(subject())
    assert e.check(alice, "read", Cluster(1, "acme", owner_id="alice")).allowed
    assert set(read) == {"org"}
    read.clear()
    assert e.check(alice, "delete", Cluster(2, "acme", owner_id="alice")).allowed
    assert set(read) == {"org", "owner_id"}


def test_filter_keeps_a_mixed_list_in_order_and_returns_the_same_objects() -> None:
    e = engine()
    alice = e.compile(subject())
    mine = Cluster(1, "acme", owner_id="alice")
    theirs = Cluster(2, "elsewhere", owner_id="bob")
    member_bucket = Bucket(uuid.uuid4(), "acme")
    plain = Object(CLUSTERS, "9", "acme")
    doc = {"kind": BUCKETS, "id": "d", "org": "nope"}
    given = [theirs, plain, mine, doc, member_bucket, Cluster(3, "acme")]
    for prepare_from in (1, 1000):
        kept = e.filter(alice, "read", given, prepare_from=prepare_from)
        assert [id(k) for k in kept] == [id(plain), id(mine), id(member_bucket), id(given[5])]
        assert e.filter(alice, "delete", iter(given), prepare_from=prepare_from) == [mine]


def test_what_cannot_be_read_says_so() -> None:
    with pytest.raises(InvalidInput, match="exactly one of 'type' and 'type_from'"):
        ObjectMapping()
    with pytest.raises(InvalidInput, match="exactly one of 'type' and 'type_from'"):
        ObjectMapping(type=CLUSTERS, type_from="kind")
    with pytest.raises(InvalidInput, match="issuer"):
        ObjectMapping(type=CLUSTERS, issuer="a|b")
    alice = Engine(POLICY).compile(subject())
    with pytest.raises(InvalidInput, match=r"Cluster is not an Object; give the engine objects="):
        Engine(POLICY).check(alice, "read", Cluster(1, "acme"))
    e = engine()
    alice = e.compile(subject())
    with pytest.raises(InvalidInput, match=r"no object mapping for int"):
        e.check(alice, "read", 5)
    with pytest.raises(InvalidInput, match="an ACL must be a mapping"):
        e.check(e.compile(subject(orgs=())), "read", Cluster(1, None, shares=["x"]))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="subject pair"):
        e.check(e.compile(subject(orgs=())), "read", Bucket(uuid.uuid4(), None, ("a", "b", "c")))  # type: ignore[arg-type]
    # ("https://app.example|bob", "x") would spell the key of (https://app.example, "bob|x")
    with pytest.raises(InvalidInput, match="subject pair"):
        e.check(
            e.compile(subject(orgs=())), "read", Bucket(uuid.uuid4(), None, (f"{ISSUER}|bob", "x"))
        )


# SQLAlchemy: the columns the mapping names -----------------------------------------------------


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "mapping_rows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org: Mapped[str | None] = mapped_column(String)
    owner_id: Mapped[str | None] = mapped_column(String)
    shares: Mapped[dict[str, list[str]] | None] = mapped_column(JSON)
    grants: Mapped[list[Grant]] = relationship()


class Grant(Base):
    __tablename__ = "mapping_grants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    row_id: Mapped[int] = mapped_column(ForeignKey("mapping_rows.id"))


ROW = ObjectMapping(
    type=CLUSTERS, organization="org", owner="owner_id", acl_users="shares", issuer=ISSUER
)


def test_column_mapping_takes_the_named_columns_and_refuses_what_sql_cannot_read() -> None:
    columns = column_mapping(Row, ROW)
    assert columns.org_id is Row.org and columns.owner is Row.owner_id
    assert columns.issuer == ISSUER
    with pytest.raises(InvalidInput, match="reads 'organization' with a function"):
        column_mapping(Row, ObjectMapping(type=CLUSTERS, organization=lambda r: r.org))
    with pytest.raises(InvalidInput, match=r"Row.grants .* not a column attribute; give ACLs"):
        column_mapping(Row, ObjectMapping(type=CLUSTERS, acl_users="grants"))
    with pytest.raises(InvalidInput, match="not a mapped class"):
        column_mapping(Cluster, CLUSTER)
    e = Engine(POLICY, objects=ObjectMappings({Row: ROW}))
    alice = e.compile(subject())
    with pytest.raises(InvalidInput, match="fixed type"):
        authorized(select(Row), e, alice, "read", mapping=DOCS)
    with pytest.raises(InvalidInput, match="no mapping given"):
        authorized(select(Row), Engine(POLICY), Engine(POLICY).compile(subject()), "read")


async def test_authorized_keeps_the_rows_a_check_allows_on_sqlite(sqlite_engine: Any) -> None:
    e = Engine(POLICY, objects=ObjectMappings({Row: ROW}))
    rows = [
        Row(id=1, org="acme"),
        Row(id=2, org="other", owner_id="alice"),
        Row(id=3, org="other", owner_id="bob", shares={"alice": ["read"]}),
        Row(id=4, org="other", owner_id="bob", shares={"bob": ["*"]}),
        Row(id=5, org=None),
    ]
    async with sqlite_engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(
            insert(Row),
            [{"id": r.id, "org": r.org, "owner_id": r.owner_id, "shares": r.shares} for r in rows],
        )
        for who in ("alice", "bob"):
            for action in ("read", "delete"):
                c = e.compile(subject(who, orgs=("acme",) if who == "alice" else ()))
                stmt = authorized(select(Row.id).order_by(Row.id), e, c, action, entity=Row)
                got = list((await conn.execute(stmt)).scalars())
                assert got == [r.id for r in rows if e.check(c, action, r).allowed], (who, action)


# What a fresh-eyes review found: each answers as the equivalent Object, or is refused ------------


def test_values_that_would_answer_otherwise_than_an_object_are_refused() -> None:
    e = engine()
    nobody = e.compile(subject(orgs=()))
    # "read,delete" would match "read" and "delete" by substring: action lists only.
    with pytest.raises(InvalidInput, match="ACL actions must be a list"):
        e.check(nobody, "read", Cluster(1, None, shares={"alice": "read,delete"}))  # type: ignore[dict-item]
    # A pair with no id would name the subject "None".
    with pytest.raises(InvalidInput, match="subject id must not be empty"):
        e.check(nobody, "delete", Bucket(uuid.uuid4(), None, (ISSUER, None)))  # type: ignore[arg-type]
    # Any other value would be compared as str(value).
    with pytest.raises(InvalidInput, match="an id must be a string, an integer or a UUID"):
        e.check(nobody, "read", Cluster(1, None, owner_id=object()))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="non-empty string or a function"):
        ObjectMapping(type=CLUSTERS, organization="")


def test_filter_returns_the_very_views_and_objects_it_was_given() -> None:
    e = engine()
    alice = e.compile(subject())
    view = CLUSTER.view(Cluster(1, "acme"))
    row = Cluster(2, "acme")
    kept = e.filter(alice, "read", [view, row, Object(CLUSTERS, "3", "nope")])
    assert len(kept) == 2 and kept[0] is view and kept[1] is row


async def test_sql_leaves_unnamed_fields_empty_and_refuses_ambiguous_statements(
    sqlite_engine: Any,
) -> None:
    """A mapping naming no organization: no row is in one, for checks and SQL alike (a
    member of acme reads nothing, instead of a query error)."""
    bare = ObjectMapping(type=CLUSTERS)
    e = Engine(POLICY, objects=ObjectMappings({Row: bare}))
    member = e.compile(subject())
    async with sqlite_engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(insert(Row), [{"id": 1, "org": "acme", "owner_id": "alice"}])
        got = (await conn.execute(authorized(select(Row.id), e, member, "read"))).all()
        assert got == [] and not e.check(member, "read", Row(id=1, org="acme")).allowed
        # Two classes selected: which rows to filter must be said, never guessed.
        both = select(Row.id, Grant.id).join(Grant, Grant.row_id == Row.id)
        with pytest.raises(InvalidInput, match="selects 2 classes"):
            authorized(both, e, member, "read")
        with pytest.raises(InvalidInput, match="through an alias"):
            authorized(select(aliased(Row).id), e, member, "read")
        with pytest.raises(InvalidInput, match="does not read Row's table"):
            authorized(select(aliased(Row).id), e, member, "read", entity=Row)
        assert authorized(both, e, member, "read", entity=Row) is not None
