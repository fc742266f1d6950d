"""self-healing runs: the database's identity, run owners, heartbeats and progress marks, run events

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 00:00:00
"""
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    installation = op.create_table(
        'installation',
        sa.Column('id', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_installation')),
    )
    op.bulk_insert(installation, [{'id': uuid.uuid4().hex[:12], 'created_at': datetime.now(UTC).replace(tzinfo=None)}])
    with op.batch_alter_table('runs') as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('progress_mark', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('progress_at', sa.DateTime(), nullable=True))
    op.create_table(
        'run_events',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('run_id', sa.String(length=40), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_events_run_id_runs')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_run_events')),
    )
    op.create_index('ix_run_events_run', 'run_events', ['run_id', 'id'])
    op.create_index('ix_staged_key', 'staged_records', ['key'])


def downgrade() -> None:
    op.drop_index('ix_staged_key', table_name='staged_records')
    op.drop_index('ix_run_events_run', table_name='run_events')
    op.drop_table('run_events')
    with op.batch_alter_table('runs') as batch_op:
        batch_op.drop_column('progress_at')
        batch_op.drop_column('progress_mark')
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('owner')
    op.drop_table('installation')
