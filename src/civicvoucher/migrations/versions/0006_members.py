"""member changes: status history columns for leaving and transfers

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 20:00:00

- ``member.status_changed_at``: when the member's status last changed (NULL: never since
  registration).
- ``member.status_reason``: why (离会原因, 调出 note), as the operator gave it.
- ``member.transferred_to_id``: for a member transferred (调出) to another union, that union's
  member row for the same person. One row per (union, person) stays the rule: a transfer marks
  the old row and adds (or reactivates) the row in the new union.

Existing rows get NULL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_changed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('status_reason', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('transferred_to_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(op.f('fk_member_transferred_to_id_member'), 'member',
                                    ['transferred_to_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('fk_member_transferred_to_id_member'), type_='foreignkey')
        batch_op.drop_column('transferred_to_id')
        batch_op.drop_column('status_reason')
        batch_op.drop_column('status_changed_at')
