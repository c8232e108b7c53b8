"""indexes for the hot paths

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 20:00:00

- ``voucher (status, expires_at)``: the expiry run's claim;
  ``voucher (program_id, status, expires_at)``: an extension's claim.
- ``redemption (status, hold_expires_at)``: voiding timed-out holds;
  ``redemption (settlement_batch_id)``: a batch's redemptions;
  ``redemption (union_id)``: scoped lists and reports join it to the org tree.
- PostgreSQL only: ``ix_org_path`` becomes a ``varchar_pattern_ops`` btree, so that a subtree
  query (``path LIKE '/1/4/%'``) uses it under a non-C collation. SQLite keeps its plain one.

On a large PostgreSQL database these take a lock on the tables while they build; run the
upgrade in a quiet hour.
"""

from __future__ import annotations

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_NEW = [
    ('voucher', 'ix_voucher_status_expires', ['status', 'expires_at']),
    ('voucher', 'ix_voucher_program_status_expires', ['program_id', 'status', 'expires_at']),
    ('redemption', 'ix_redemption_status_hold', ['status', 'hold_expires_at']),
    ('redemption', 'ix_redemption_settlement_batch', ['settlement_batch_id']),
    ('redemption', 'ix_redemption_union', ['union_id']),
]


def _postgres() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def upgrade() -> None:
    for table, name, columns in _NEW:
        op.create_index(name, table, columns, unique=False)
    if _postgres():
        op.drop_index('ix_org_path', table_name='org')
        op.create_index('ix_org_path', 'org', ['path'], unique=False,
                        postgresql_ops={'path': 'varchar_pattern_ops'})


def downgrade() -> None:
    if _postgres():
        op.drop_index('ix_org_path', table_name='org')
        op.create_index('ix_org_path', 'org', ['path'], unique=False)
    for table, name, _ in reversed(_NEW):
        op.drop_index(name, table_name=table)
