"""chunk barrier in the database: dispatch_chunks.emptied_at

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 14:35:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('dispatch_chunks') as batch_op:
        batch_op.add_column(sa.Column('emptied_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dispatch_chunks') as batch_op:
        batch_op.drop_column('emptied_at')
