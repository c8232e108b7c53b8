"""merchant recovery: refunds after settlement are netted from the merchant's next payout

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 04:00:00

- ``settlement_batch.recovered_fen``: what the merchant owed back (refunds of redemptions it
  had already been paid for) and was kept from this batch's payout.
- ``settlement_run.recovered_fen``: the run's total of the same.
- a unique (run_id, merchant_id) on ``settlement_batch``: one payout per merchant per run,
  and the index the run's claim joins on.

Existing rows get 0: until this revision a settled redemption could not be refunded.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('settlement_run', 'settlement_batch'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('recovered_fen', sa.BigInteger(), nullable=False,
                                          server_default='0'))
    with op.batch_alter_table('settlement_batch', schema=None) as batch_op:
        batch_op.create_unique_constraint(
            op.f('uq_settlement_batch_run_id_merchant_id'), ['run_id', 'merchant_id'])


def downgrade() -> None:
    with op.batch_alter_table('settlement_batch', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('uq_settlement_batch_run_id_merchant_id'), type_='unique')
    for table in ('settlement_batch', 'settlement_run'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('recovered_fen')
