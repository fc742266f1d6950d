"""invoice plans found by their CloseInvoice: an index on (run_id, close_no)

A bare ``CloseInvoice`` looks up the plans it closes by ``close_no``. Without this index each lookup
read every plan of the run (the primary key's ``run_id`` prefix), so closing cost grew with the run:
6.5 ms a close at 100k records, about ten times that at 1M.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 07:00:00
"""
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_invoice_plans_close', 'invoice_plans', ['run_id', 'close_no'])


def downgrade() -> None:
    op.drop_index('ix_invoice_plans_close', table_name='invoice_plans')
