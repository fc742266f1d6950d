"""web console: operators with password hashes, sign-ins, imports being prepared, audit

Revision ID: 0020
Revises: 0006
Create Date: 2026-12-06 23:12:23.153288
"""
import sqlalchemy as sa
from alembic import op


revision = '0020'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_audit',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('operator', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_audit'))
    )
    with op.batch_alter_table('console_audit', schema=None) as batch_op:
        batch_op.create_index('ix_console_audit_run', ['run_id', 'at'], unique=False)

    op.create_table('console_imports',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('operator', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('biller', sa.String(length=255), nullable=True),
    sa.Column('import_type', sa.String(length=16), nullable=True),
    sa.Column('file_name', sa.String(length=255), nullable=True),
    sa.Column('file_path', sa.Text(), nullable=True),
    sa.Column('file_size', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('encoding', sa.String(length=32), nullable=True),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('invoice_types', sa.JSON(), nullable=False),
    sa.Column('columns', sa.JSON(), nullable=False),
    sa.Column('prefix', sa.String(length=64), nullable=False),
    sa.Column('parts', sa.JSON(), nullable=False),
    sa.Column('precheck', sa.JSON(), nullable=True),
    sa.Column('create_missing', sa.Boolean(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('run_id', sa.String(length=40), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_imports'))
    )
    op.create_table('console_operators',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('signed_in_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_operators')),
    sa.UniqueConstraint('name', name=op.f('uq_console_operators_name'))
    )
    op.create_table('console_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('operator_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('csrf', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['operator_id'], ['console_operators.id'], name=op.f('fk_console_sessions_operator_id_console_operators')),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_console_sessions'))
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_operator_id'), ['operator_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_sessions_operator_id'))

    op.drop_table('console_sessions')
    op.drop_table('console_operators')
    op.drop_table('console_imports')
    with op.batch_alter_table('console_audit', schema=None) as batch_op:
        batch_op.drop_index('ix_console_audit_run')

    op.drop_table('console_audit')
