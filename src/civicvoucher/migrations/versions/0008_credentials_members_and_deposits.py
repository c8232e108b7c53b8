"""member credentials are the member's own; deposits that need a second person

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10 09:00:00

- ``api_user.credential_origin``: who set the user's credential: ``admin`` (an admin or an
  operator), ``self`` (the member, by activating), ``invited`` (nothing usable yet). Every
  existing user is marked ``admin``: before this revision only admins and operators created
  users and chose their passwords (or minted their tokens), so every existing member login is
  refused from now on (``auth/credentials.py``) until the member is invited again and
  activates it.
- ``api_user.activation_hash`` / ``activation_expires_at`` / ``activation_used_at``: a
  member's one-time activation code, only as its HMAC (the key is not in the database).
- ``deposit_request``: a deposit waiting for its checker (maker-checker, ``funds/approvals.py``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credential_origin', sa.String(length=10), nullable=False,
                                      server_default='admin'))
        batch_op.add_column(sa.Column('activation_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('activation_expires_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('activation_used_at', sa.DateTime(), nullable=True))
    op.create_table(
        'deposit_request',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('org_id', sa.Integer(), nullable=False),
        sa.Column('from_org_id', sa.Integer(), nullable=True),
        sa.Column('amount_fen', sa.BigInteger(), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('memo', sa.String(length=200), nullable=True),
        sa.Column('reason', sa.String(length=20), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('maker', sa.String(length=120), nullable=False),
        sa.Column('maker_name', sa.String(length=100), nullable=False),
        sa.Column('maker_org_id', sa.Integer(), nullable=True),
        sa.Column('checker', sa.String(length=120), nullable=True),
        sa.Column('checker_name', sa.String(length=100), nullable=True),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.Column('note', sa.String(length=200), nullable=True),
        sa.Column('transfer_id', sa.String(length=255), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['org_id'], ['org.id'],
                                name=op.f('fk_deposit_request_org_id_org')),
        sa.ForeignKeyConstraint(['from_org_id'], ['org.id'],
                                name=op.f('fk_deposit_request_from_org_id_org')),
        sa.ForeignKeyConstraint(['maker_org_id'], ['org.id'],
                                name=op.f('fk_deposit_request_maker_org_id_org')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_deposit_request')),
        sa.UniqueConstraint('key', name=op.f('uq_deposit_request_key')),
    )
    op.create_index('ix_deposit_request_status_org', 'deposit_request', ['status', 'org_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_deposit_request_status_org', table_name='deposit_request')
    op.drop_table('deposit_request')
    with op.batch_alter_table('api_user', schema=None) as batch_op:
        batch_op.drop_column('activation_used_at')
        batch_op.drop_column('activation_expires_at')
        batch_op.drop_column('activation_hash')
        batch_op.drop_column('credential_origin')
