"""money under load: single-use QR payloads, the ID-hash key's fingerprint

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 20:00:00

- ``voucher.qr_used_exp``: the expiry (epoch seconds) of the newest QR payload spent on the
  voucher; a payload no newer than it is refused, so a payload is single-use.
- ``deployment_setting``: facts that belong to the database, not to a folder; today the
  fingerprint of the key that hashes ID numbers, so a process holding another key refuses
  to run instead of hashing the same person differently.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('voucher', schema=None) as batch_op:
        batch_op.add_column(sa.Column('qr_used_exp', sa.BigInteger(), nullable=True))
    op.create_table(
        'deployment_setting',
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('value', sa.String(length=500), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_deployment_setting')),
    )


def downgrade() -> None:
    op.drop_table('deployment_setting')
    with op.batch_alter_table('voucher', schema=None) as batch_op:
        batch_op.drop_column('qr_used_exp')
