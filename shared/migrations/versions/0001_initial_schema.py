"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-21 09:52:49.211264
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ledger',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=64), nullable=False),
    sa.Column('natural_key', sa.Text(), nullable=True),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('target_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('record_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('committed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_ledger'))
    )
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_entity_natural', ['entity', 'natural_key'], unique=False)

    op.create_table('reference_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reference_items')),
    sa.UniqueConstraint('kind', 'name', name=op.f('uq_reference_items_kind_name'))
    )
    op.create_table('runs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('files', sa.JSON(), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs'))
    )
    op.create_table('accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('role_id', sa.Integer(), nullable=True),
    sa.Column('culture_id', sa.Integer(), nullable=True),
    sa.Column('currency_id', sa.Integer(), nullable=True),
    sa.Column('language_id', sa.Integer(), nullable=True),
    sa.Column('status_type_id', sa.Integer(), nullable=True),
    sa.Column('tax_code_id', sa.Integer(), nullable=True),
    sa.Column('bill_group_id', sa.Integer(), nullable=True),
    sa.Column('credit_rating_id', sa.Integer(), nullable=True),
    sa.Column('bill_day', sa.Integer(), nullable=True),
    sa.Column('disable_reason', sa.String(length=255), nullable=True),
    sa.Column('created_date', sa.DateTime(), nullable=True),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['bill_group_id'], ['reference_items.id'], name=op.f('fk_accounts_bill_group_id_reference_items')),
    sa.ForeignKeyConstraint(['credit_rating_id'], ['reference_items.id'], name=op.f('fk_accounts_credit_rating_id_reference_items')),
    sa.ForeignKeyConstraint(['culture_id'], ['reference_items.id'], name=op.f('fk_accounts_culture_id_reference_items')),
    sa.ForeignKeyConstraint(['currency_id'], ['reference_items.id'], name=op.f('fk_accounts_currency_id_reference_items')),
    sa.ForeignKeyConstraint(['language_id'], ['reference_items.id'], name=op.f('fk_accounts_language_id_reference_items')),
    sa.ForeignKeyConstraint(['owner_id'], ['reference_items.id'], name=op.f('fk_accounts_owner_id_reference_items')),
    sa.ForeignKeyConstraint(['parent_id'], ['accounts.id'], name=op.f('fk_accounts_parent_id_accounts')),
    sa.ForeignKeyConstraint(['role_id'], ['reference_items.id'], name=op.f('fk_accounts_role_id_reference_items')),
    sa.ForeignKeyConstraint(['status_type_id'], ['reference_items.id'], name=op.f('fk_accounts_status_type_id_reference_items')),
    sa.ForeignKeyConstraint(['tax_code_id'], ['reference_items.id'], name=op.f('fk_accounts_tax_code_id_reference_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('owner_id', 'name', name=op.f('uq_accounts_owner_id_name'))
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_accounts_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_accounts_parent_id'), ['parent_id'], unique=False)

    op.create_table('dispatch_chunks',
    sa.Column('dispatch_id', sa.String(length=40), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('chunk', sa.Integer(), nullable=False),
    sa.Column('published_at', sa.DateTime(), nullable=True),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['dispatch_id'], ['runs.id'], name=op.f('fk_dispatch_chunks_dispatch_id_runs')),
    sa.PrimaryKeyConstraint('dispatch_id', 'wave', 'chunk', name=op.f('pk_dispatch_chunks'))
    )
    op.create_table('dispatch_waves',
    sa.Column('dispatch_id', sa.String(length=40), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('chunks_total', sa.Integer(), nullable=False),
    sa.Column('next_chunk', sa.Integer(), nullable=False),
    sa.Column('chunks_done', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['dispatch_id'], ['runs.id'], name=op.f('fk_dispatch_waves_dispatch_id_runs')),
    sa.PrimaryKeyConstraint('dispatch_id', 'wave', name=op.f('pk_dispatch_waves'))
    )
    op.create_table('run_entities',
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('entity', sa.String(length=64), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('read', sa.Integer(), nullable=False),
    sa.Column('committed', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('dead', sa.Integer(), nullable=False),
    sa.Column('blocked', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_entities_run_id_runs')),
    sa.PrimaryKeyConstraint('run_id', 'entity', name=op.f('pk_run_entities'))
    )
    op.create_table('staged_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('dispatch_id', sa.String(length=40), nullable=False),
    sa.Column('entity', sa.String(length=64), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('chunk', sa.Integer(), nullable=False),
    sa.Column('source_file', sa.Text(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=True),
    sa.Column('col', sa.Integer(), nullable=True),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('natural_key', sa.Text(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('target_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_staged_records_run_id_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staged_records'))
    )
    with op.batch_alter_table('staged_records', schema=None) as batch_op:
        batch_op.create_index('ix_staged_dispatch_chunk', ['dispatch_id', 'wave', 'chunk'], unique=False)
        batch_op.create_index('ix_staged_run_digest', ['run_id', 'digest'], unique=False)
        batch_op.create_index('ix_staged_run_entity_status', ['run_id', 'entity', 'status'], unique=False)
        batch_op.create_index('ix_staged_run_natural', ['run_id', 'entity', 'natural_key'], unique=False)

    op.create_table('contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('first_name', sa.String(length=255), nullable=True),
    sa.Column('last_name', sa.String(length=255), nullable=True),
    sa.Column('title', sa.String(length=255), nullable=True),
    sa.Column('contact_type_id', sa.Integer(), nullable=True),
    sa.Column('company', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_contacts_account_id_accounts')),
    sa.ForeignKeyConstraint(['contact_type_id'], ['reference_items.id'], name=op.f('fk_contacts_contact_type_id_reference_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts')),
    sa.UniqueConstraint('account_id', 'name', name=op.f('uq_contacts_account_id_name'))
    )
    op.create_table('dead_letters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('record_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('entity', sa.String(length=64), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('stage', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('error_class', sa.String(length=64), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('field', sa.String(length=128), nullable=True),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('hint', sa.Text(), nullable=True),
    sa.Column('ref_key', sa.Text(), nullable=True),
    sa.Column('blocked_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('source_file', sa.Text(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=True),
    sa.Column('col', sa.Integer(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['record_id'], ['staged_records.id'], name=op.f('fk_dead_letters_record_id_staged_records')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_dead_letters_run_id_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letters')),
    sa.UniqueConstraint('record_id', name=op.f('uq_dead_letters_record_id'))
    )
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.create_index('ix_dead_letters_parent_lookup', ['entity', 'ref_key', 'state'], unique=False)
        batch_op.create_index('ix_dead_letters_run_state', ['run_id', 'state'], unique=False)

    op.create_table('contact_points',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('point_type_id', sa.Integer(), nullable=False),
    sa.Column('value', sa.String(length=512), nullable=False),
    sa.Column('contact_type_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_points_contact_id_contacts')),
    sa.ForeignKeyConstraint(['contact_type_id'], ['reference_items.id'], name=op.f('fk_contact_points_contact_type_id_reference_items')),
    sa.ForeignKeyConstraint(['point_type_id'], ['reference_items.id'], name=op.f('fk_contact_points_point_type_id_reference_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_points')),
    sa.UniqueConstraint('contact_id', 'point_type_id', name=op.f('uq_contact_points_contact_id_point_type_id'))
    )


def downgrade() -> None:
    op.drop_table('contact_points')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_index('ix_dead_letters_run_state')
        batch_op.drop_index('ix_dead_letters_parent_lookup')

    op.drop_table('dead_letters')
    op.drop_table('contacts')
    with op.batch_alter_table('staged_records', schema=None) as batch_op:
        batch_op.drop_index('ix_staged_run_natural')
        batch_op.drop_index('ix_staged_run_entity_status')
        batch_op.drop_index('ix_staged_run_digest')
        batch_op.drop_index('ix_staged_dispatch_chunk')

    op.drop_table('staged_records')
    op.drop_table('run_entities')
    op.drop_table('dispatch_waves')
    op.drop_table('dispatch_chunks')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accounts_parent_id'))
        batch_op.drop_index(batch_op.f('ix_accounts_name'))

    op.drop_table('accounts')
    op.drop_table('runs')
    op.drop_table('reference_items')
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_entity_natural')

    op.drop_table('ledger')
