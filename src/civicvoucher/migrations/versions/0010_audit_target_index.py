"""an index on the audit log's target

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-15 09:00:00

- ``audit_entry (target)``: the voucher trace (``vouchers/trace.py``) reads a voucher's audit
  entries by their targets (``issuance:<id>``, ``redemption:<id>``, ``settlement_run:<id>``…);
  without an index each trace scans the whole log. Only ``action`` had one.

On a large PostgreSQL database this takes a lock on ``audit_entry`` while it builds (appends
wait): run the upgrade in a quiet hour.
"""

from __future__ import annotations

from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_audit_entry_target', 'audit_entry', ['target'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_audit_entry_target', table_name='audit_entry')
