"""The bulk writers of each database, on the real database: ids come back in the rows' order, rows
already there are skipped, updates and additions land, and failures come out as SQLAlchemy's own
exceptions (a unique violation as ``IntegrityError``, a lost server as an invalidated
``OperationalError``) whichever path wrote them — the callers' handling of conflicts and outages
depends on it. A rollback never leaves the fast path pointing at a table that went with it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from shared.db import engine_for, session_factory
from shared.dialects import dialect_of

METADATA = sa.MetaData()
ITEMS = sa.Table(
    "dialect_items", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(20), nullable=False, unique=True),
    sa.Column("amount", sa.Integer, nullable=False, default=0),
    sa.Column("note", sa.String(10)),
)

STAGED = sa.Table(
    "dialect_staged", METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(20), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
)


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    METADATA.create_all(engine_for(database_url))
    with session_factory(database_url)() as session:
        yield session


def rows(*codes: str) -> list[dict[str, object]]:
    return [{"code": code, "amount": 1, "note": None} for code in codes]


def contents(session: Session) -> list[tuple[str, int]]:
    return [tuple(r) for r in session.execute(sa.select(ITEMS.c.code, ITEMS.c.amount).order_by(ITEMS.c.code))]


def test_ids_come_back_in_the_rows_order(session: Session) -> None:
    codes = [f"c{n:04d}" for n in range(500, 0, -1)]  # descending: an unordered RETURNING would show
    found = dialect_of(session).insert_returning(session, ITEMS, rows(*codes), ["id", "code"])
    session.commit()
    assert [code for _, code in found] == codes
    ids = [id_ for id_, _ in found]
    assert ids == sorted(ids) and len(set(ids)) == len(codes)


def test_staged_rows_get_ascending_ids_in_read_order_and_their_json_as_given(session: Session) -> None:
    dialect = dialect_of(session)
    first = [{"code": f"a{n}", "payload": {"Name": f"n{n}", "Note": "tab\there, quote \" and é"}} for n in range(300)]
    ids = dialect.insert_ids(session, STAGED, first)
    later = dialect.insert_ids(session, STAGED, [{"code": "b", "payload": {"Name": "\\N"}}])
    session.commit()
    assert ids == sorted(ids) and len(set(ids)) == 300 and later[0] > ids[-1]
    stored = session.execute(sa.select(STAGED.c.id, STAGED.c.code, STAGED.c.payload).order_by(STAGED.c.id)).all()
    assert [(i, c, p) for i, c, p in stored] == [
        *((i, r["code"], r["payload"]) for i, r in zip(ids, first, strict=True)), (later[0], "b", {"Name": "\\N"})]


def test_insert_missing_skips_rows_already_there_and_inserts_the_others(session: Session) -> None:
    dialect = dialect_of(session)
    dialect.insert(session, ITEMS, rows("a", "b"))
    session.commit()
    dialect.insert_missing(session, ITEMS, rows("b", "c", "a", "d"), ["code"])
    session.commit()
    assert contents(session) == [("a", 1), ("b", 1), ("c", 1), ("d", 1)]


def test_update_rows_and_add_to_land_on_their_keys(session: Session) -> None:
    dialect = dialect_of(session)
    ids = dict((code, id_) for id_, code in dialect.insert_returning(session, ITEMS, rows("a", "b", "c"), ["id", "code"]))
    dialect.update_rows(session, ITEMS, "id", [{"id": ids["a"], "note": "first"}, {"id": ids["c"], "note": "third"}])
    dialect.add_to(session, ITEMS, "id", [{"id": ids["b"], "amount": 41}, {"id": ids["c"], "amount": -1}])
    session.commit()
    got = session.execute(sa.select(ITEMS.c.code, ITEMS.c.amount, ITEMS.c.note).order_by(ITEMS.c.code)).all()
    assert [tuple(r) for r in got] == [("a", 1, "first"), ("b", 42, None), ("c", 0, "third")]


def test_a_duplicate_key_is_an_integrity_error_and_the_next_transaction_writes(session: Session) -> None:
    dialect = dialect_of(session)
    dialect.insert(session, ITEMS, rows("a"))
    session.commit()
    for _ in range(2):  # the second time on a connection whose earlier twin went with a rollback
        with pytest.raises(sa.exc.IntegrityError):
            dialect.insert_returning(session, ITEMS, rows("new", "a"), ["id"])
        session.rollback()
    found = dialect.insert_returning(session, ITEMS, rows("new"), ["code"])
    session.commit()
    assert found == [("new",)]
    assert contents(session) == [("a", 1), ("new", 1)]


def test_a_table_made_in_a_rolled_back_transaction_is_made_again(session: Session) -> None:
    dialect = dialect_of(session)
    dialect.insert(session, ITEMS, rows("a"))  # the first use on this connection: any twin is made here
    session.rollback()
    dialect.update_rows(session, ITEMS, "code", [{"code": "a", "note": "x"}])  # nothing to update
    dialect.insert(session, ITEMS, rows("b"))
    session.commit()
    assert contents(session) == [("b", 1)]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_lost_server_connection_is_a_transient_error_and_the_next_session_reconnects(session: Session) -> None:
    dialect = dialect_of(session)
    dialect.insert(session, ITEMS, rows("a"))
    session.commit()
    pid = session.scalar(sa.text("SELECT pg_backend_pid()"))
    with engine_for(str(session.get_bind().url.render_as_string(hide_password=False))).connect() as other:
        other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        other.commit()
    with pytest.raises(sa.exc.OperationalError) as raised:
        dialect.insert_returning(session, ITEMS, rows("b"), ["id"])
    assert raised.value.connection_invalidated
    session.rollback()
    dialect.insert(session, ITEMS, rows("c"))
    session.commit()
    assert contents(session) == [("a", 1), ("c", 1)]


NAMES = ["ab", "a-b", "B", "a", "Émile", "emile", "zz", "Z9", "a b"]


def test_text_sorted_in_code_point_order_merges_with_python_sorting(session: Session) -> None:
    """Reconciliation merges sorted streams in Python: the database must sort names as ``sorted`` does,
    whatever the column's collation (on PostgreSQL, a linguistic one that ignores punctuation and case)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    collation = ' COLLATE "en-US-x-icu"' if postgres else ""
    session.execute(sa.text(f"CREATE TEMPORARY TABLE dialect_names (name VARCHAR(20){collation})"))
    session.execute(sa.text("INSERT INTO dialect_names (name) VALUES (:name)"), [{"name": n} for n in NAMES])
    name = sa.column("name", sa.String)
    ordered = session.scalars(sa.select(name).select_from(sa.table("dialect_names"))
                              .order_by(dialect_of(session).in_code_point_order(name))).all()
    assert ordered == sorted(NAMES)
    if postgres:  # the column's own order differs, or this test could not tell
        assert session.scalars(sa.select(name).select_from(sa.table("dialect_names")).order_by(name)).all() != sorted(NAMES)


def test_update_rows_on_a_composite_key_needs_every_part_to_match(session: Session) -> None:
    dialect = dialect_of(session)
    dialect.insert_returning(session, ITEMS, rows("a", "b"), ["id"])
    dialect.update_rows(session, ITEMS, ("code", "amount"), [{"code": "a", "amount": 1, "note": "both"},
                                                             {"code": "b", "amount": 2, "note": "one"}])
    session.commit()
    got = session.execute(sa.select(ITEMS.c.code, ITEMS.c.note).order_by(ITEMS.c.code)).all()
    assert [tuple(r) for r in got] == [("a", "both"), ("b", None)]
