"""A load message names its records; the loading process reads their envelopes from the staged
records, one query a batch, on SQLite and PostgreSQL: what publishing names is what loading reads,
record by record, and loading it gives the same outcomes as envelopes built by hand."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from shared.envelope import pack_message, runs_named
from shared.schema.control import StagedRecord
from tests.workers.test_batch import BAD, USERS, Target
from workers.envelopes import envelopes_of
from workers.lookups import IN_CHUNK


def test_named_records_are_read_back_as_their_envelopes(database_url: str, tmp_path: Path) -> None:
    target = Target(database_url, tmp_path)
    by_hand = target.envelopes("User")
    chunk = (target.run_id, 2, 0)
    ids = [e.record_id for e in by_hand]
    messages = [pack_message(chunk, ids[:5], upsert=False), pack_message(chunk, ids[5:], upsert=True)]
    first, second = envelopes_of(target.sessions, messages)
    read = first + second
    assert [e.record_id for e in read] == ids
    for mine, theirs in zip(read, by_hand, strict=True):
        assert (mine.run_id, mine.entity, mine.key, mine.digest, mine.position, mine.fields) == \
            (theirs.run_id, theirs.entity, theirs.key, theirs.digest, theirs.position, theirs.fields)
        assert mine.chunk == chunk and not mine.replay
    assert [e.upsert for e in read] == [False] * 5 + [True] * (USERS - 5)
    assert runs_named(messages[0]) == {target.run_id}

    outcomes = target.load("User", read)
    assert [outcomes[e.record_id] for e in read] == ["committed"] * BAD + ["dead"] + ["committed"] * (USERS - BAD - 1)


def test_a_replay_a_whole_envelope_and_a_record_no_longer_staged(database_url: str, tmp_path: Path) -> None:
    target = Target(database_url, tmp_path)
    users = target.envelopes("User")
    gone = users[-1].record_id
    with target.sessions.begin() as session:
        session.execute(sa.delete(StagedRecord).where(StagedRecord.id == gone))
    replay_chunk = ("x20261207-000000-abcdef", 0, 0)
    named, carried = envelopes_of(target.sessions, [
        pack_message(replay_chunk, [users[0].record_id, gone, users[1].record_id], upsert=False),
        [users[2].to_message()],
    ])
    assert [e.record_id for e in named] == [users[0].record_id, users[1].record_id], "the unstaged record is left out"
    assert all(e.replay for e in named), "a record published by another dispatch than its run is a replay"
    assert carried == [users[2]]
    assert runs_named([users[2].to_message()]) == {target.run_id}


def test_more_ids_than_one_query_takes(tmp_path: Path) -> None:
    target = Target(f"sqlite:///{tmp_path / 'many.db'}", tmp_path)
    one = target.envelopes("User")[0]
    many = [one.record_id] * (IN_CHUNK + 7)
    (read,) = envelopes_of(target.sessions, [pack_message((target.run_id, 2, 0), many, upsert=False)])
    assert len(read) == IN_CHUNK + 7 and {e.key for e in read} == {one.key}
