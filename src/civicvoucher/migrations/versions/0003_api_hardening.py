"""api hardening: audit head MAC, channel kinds per payment channel, idempotency claim token

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:00:00

- ``audit_head.mac``: HMAC (audit key, not in the database) over the head's (seq, hash), so
  deleting the newest entries and rewriting the head is caught by ``audit verify``. NULL until
  the first append after this migration (the migration has no key to seal it with).
- ``payment_channel.channels``: the redemption channel kinds a payment channel may report
  (comma-separated ``online``, ``offline`` ...); existing channels get ``online``, what the
  callback defaulted to.
- ``idempotency_key.claim_token``: the fencing token of the request that owns an in-progress
  key; only its owner may store the answer or release the key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mac', sa.String(length=64), nullable=True))
    with op.batch_alter_table('payment_channel', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channels', sa.String(length=60), nullable=False,
                                      server_default='online'))
    with op.batch_alter_table('idempotency_key', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim_token', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('idempotency_key', schema=None) as batch_op:
        batch_op.drop_column('claim_token')
    with op.batch_alter_table('payment_channel', schema=None) as batch_op:
        batch_op.drop_column('channels')
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.drop_column('mac')
