"""the dashboard's rollup: per-union summaries and the log of unions changed since

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 05:00:00

See ``analytics/rollup.py``. Tables ``dash_voucher``, ``dash_issue_day``, ``dash_redemption``,
``dash_spend``, ``dash_redeem_day``, ``dash_member`` (summaries), ``dash_dirty`` (the log, written
by triggers on voucher, redemption, refund, member and merchant) and ``dash_state``.

On an empty database the summaries are valid from the start (``dash_state`` is written); on one
with data the dashboard computes directly until ``civicvoucher dashboard refresh`` has built
them (at scale 1.0 that takes minutes: not done inside the migration).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _nf() -> list:
    return [sa.Column('n', sa.BigInteger(), nullable=False),
            sa.Column('fen', sa.BigInteger(), nullable=False)]


def _keys(*more) -> list:
    return [sa.Column('union_id', sa.Integer(), nullable=False),
            sa.Column('program_id', sa.Integer(), nullable=False),
            sa.Column('product_id', sa.Integer(), nullable=False), *more]


def upgrade() -> None:
    from civicvoucher import rollup_schema as rollup

    op.create_table('dash_dirty',
                    sa.Column('seq', BigId, autoincrement=True, nullable=False),
                    sa.Column('union_id', sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint('seq', name=op.f('pk_dash_dirty')))
    op.create_index('ix_dash_dirty_union', 'dash_dirty', ['union_id'])
    op.create_table('dash_state',
                    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
                    sa.Column('zone', sa.String(64), nullable=False),
                    sa.Column('refreshed_at', sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint('id', name=op.f('pk_dash_state')))
    op.create_table('dash_voucher', *_keys(
        sa.Column('form', sa.String(20), nullable=False),
        sa.Column('status', sa.String(20), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=True), *_nf()))
    op.create_table('dash_issue_day', *_keys(sa.Column('day', sa.Date(), nullable=False),
                                             *_nf()))
    op.create_table('dash_redemption', *_keys(
        sa.Column('status', sa.String(20), nullable=False), *_nf(),
        *[sa.Column(c, sa.BigInteger(), nullable=False)
          for c in ('order_fen', 'refunds', 'refunded_fen', 'restored_fen', 'to_fund_fen')]))
    op.create_table('dash_spend', *_keys(
        sa.Column('category', sa.String(20), nullable=False),
        sa.Column('channel', sa.String(20), nullable=False), *_nf(),
        sa.Column('order_fen', sa.BigInteger(), nullable=False)))
    op.create_table('dash_redeem_day', *_keys(
        sa.Column('day', sa.Date(), nullable=False), *_nf(),
        sa.Column('order_fen', sa.BigInteger(), nullable=False)))
    op.create_table('dash_member',
                    sa.Column('union_id', sa.Integer(), autoincrement=False, nullable=False),
                    sa.Column('members', sa.BigInteger(), nullable=False),
                    sa.PrimaryKeyConstraint('union_id', name=op.f('pk_dash_member')))
    for t in ('voucher', 'issue_day', 'redemption', 'spend', 'redeem_day'):
        op.create_index(f'ix_dash_{t}_union', f'dash_{t}', ['union_id'])

    bind = op.get_bind()
    ddl = rollup.pg_trigger_ddl() if bind.dialect.name == 'postgresql' \
        else rollup.sqlite_trigger_ddl()
    for stmt in ddl:
        op.execute(stmt)
    empty = not any(bind.execute(sa.text(f"SELECT 1 FROM {t} LIMIT 1")).first()
                    for t in ('voucher', 'redemption', 'member'))
    if empty:
        from civicvoucher.core import clock

        zone = clock.zone()
        bind.execute(sa.text("INSERT INTO dash_state (id, zone, refreshed_at) "
                             "VALUES (1, :z, :t)"),
                     {"z": getattr(zone, "key", str(zone)), "t": clock.now()})


def downgrade() -> None:
    from civicvoucher import rollup_schema as rollup

    bind = op.get_bind()
    drop = rollup.pg_trigger_drop() if bind.dialect.name == 'postgresql' \
        else rollup.sqlite_trigger_drop()
    for stmt in drop:
        op.execute(stmt)
    for t in ('voucher', 'issue_day', 'redemption', 'spend', 'redeem_day'):
        op.drop_index(f'ix_dash_{t}_union', table_name=f'dash_{t}')
    op.drop_index('ix_dash_dirty_union', table_name='dash_dirty')
    for t in ('dash_member', 'dash_redeem_day', 'dash_spend', 'dash_redemption',
              'dash_issue_day', 'dash_voucher', 'dash_state', 'dash_dirty'):
        op.drop_table(t)
