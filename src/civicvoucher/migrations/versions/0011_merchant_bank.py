"""merchant bank details (sealed account number) and who registered a merchant

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-20 09:00:00

- ``merchant.payee_name``, ``bank_name``: the payee's account name and the bank (开户行).
- ``merchant.account_sealed``: the account number sealed under the sealing keyring
  (``core.sealed``, context ``merchant.account:<uscc>``); never in clear.
  ``account_masked``: its masked form for pages (``6222****1234``).
- ``merchant.registered_by``: ``user:<id>`` of whoever registered it through the API or the
  console, so a second person approves it.

All nullable: merchants registered before have no bank details until they are given.
Downgrade drops the columns (and with them the sealed numbers).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

COLUMNS = (
    ('payee_name', 200), ('bank_name', 200), ('account_sealed', 300), ('account_masked', 40),
    ('registered_by', 120),
)


def upgrade() -> None:
    for name, size in COLUMNS:
        op.add_column('merchant', sa.Column(name, sa.String(length=size), nullable=True))


def downgrade() -> None:
    # plain ALTER TABLE DROP COLUMN (SQLite 3.35+): no table copy, so the merchant table's
    # referrers (redemptions, batches, accounts, users) are left alone
    for name, _ in reversed(COLUMNS):
        op.drop_column('merchant', name)
