"""staging writes one index fewer: repeats are numbered by the first key, not by an index on digest

``ix_staged_run_digest`` (run, 64-character content digest) served one query only: the numbering of
repeated content once a run is staged. Every staged record starts with the key of its content's
first occurrence (``sha256(digest:1)``), so records with the same content share a key until they
are numbered, and ``ix_staged_key`` finds them just as well. A digest is random, so each staged
record wrote into a random page of that index: at a million records it no longer fits in memory,
and it was 9% of the write-ahead log of a 100k-record run.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 18:00:00
"""
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_staged_run_digest', table_name='staged_records')


def downgrade() -> None:
    op.create_index('ix_staged_run_digest', 'staged_records', ['run_id', 'digest'])
