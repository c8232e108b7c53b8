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


# --- the triggers that log changed unions in dash_dirty (PostgreSQL: once per statement,
# from its transition tables; SQLite: per row) -----------------------------------------------

_PG_SOURCES = {  # table -> the union ids of a transition table ``t``
    "voucher": "SELECT union_id FROM {t}",
    "redemption": "SELECT union_id FROM {t}",
    "member": "SELECT union_id FROM {t}",
    "refund": "SELECT r.union_id FROM {t} x JOIN redemption r ON r.id = x.redemption_id",
}


def pg_trigger_ddl() -> list[str]:
    out = []
    for table, src in _PG_SOURCES.items():
        for event, refs, body in (
            ("INSERT", "NEW TABLE AS dash_new", src.format(t="dash_new")),
            ("UPDATE", "OLD TABLE AS dash_old NEW TABLE AS dash_new",
             src.format(t="dash_new") + " UNION " + src.format(t="dash_old")),
            ("DELETE", "OLD TABLE AS dash_old", src.format(t="dash_old")),
        ):
            fn = f"dash_mark_{table}_{event.lower()}"
            out.append(
                f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                f"BEGIN\n  INSERT INTO dash_dirty (union_id) SELECT DISTINCT u.union_id FROM "
                f"({body}) u WHERE u.union_id IS NOT NULL;\n  RETURN NULL;\nEND $$")
            out.append(f"CREATE TRIGGER {fn} AFTER {event} ON {table} REFERENCING {refs} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {fn}()")
    out.append(
        "CREATE OR REPLACE FUNCTION dash_mark_merchant_update() RETURNS trigger LANGUAGE plpgsql "
        "AS $$\nBEGIN\n  INSERT INTO dash_dirty (union_id) SELECT DISTINCT r.union_id FROM "
        "dash_new n JOIN dash_old o ON o.id = n.id JOIN redemption r ON r.merchant_id = n.id "
        "WHERE n.category IS DISTINCT FROM o.category;\n  RETURN NULL;\nEND $$")
    out.append("CREATE TRIGGER dash_mark_merchant_update AFTER UPDATE ON merchant REFERENCING "
               "OLD TABLE AS dash_old NEW TABLE AS dash_new FOR EACH STATEMENT EXECUTE "
               "FUNCTION dash_mark_merchant_update()")
    return out


def pg_trigger_drop() -> list[str]:
    out = []
    for table in (*_PG_SOURCES, "merchant"):
        for event in ("insert", "update", "delete"):
            if table == "merchant" and event != "update":
                continue
            fn = f"dash_mark_{table}_{event}"
            out.append(f"DROP TRIGGER IF EXISTS {fn} ON {table}")
            out.append(f"DROP FUNCTION IF EXISTS {fn}()")
    return out


def sqlite_trigger_ddl() -> list[str]:
    out = []
    for table in ("voucher", "redemption", "member"):
        out += [
            f"CREATE TRIGGER dash_mark_{table}_insert AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO dash_dirty (union_id) VALUES (NEW.union_id); END",
            f"CREATE TRIGGER dash_mark_{table}_update AFTER UPDATE ON {table} BEGIN "
            f"INSERT INTO dash_dirty (union_id) VALUES (NEW.union_id); "
            f"INSERT INTO dash_dirty (union_id) SELECT OLD.union_id "
            f"WHERE OLD.union_id IS NOT NEW.union_id; END",
            f"CREATE TRIGGER dash_mark_{table}_delete AFTER DELETE ON {table} BEGIN "
            f"INSERT INTO dash_dirty (union_id) VALUES (OLD.union_id); END",
        ]
    for event, row in (("insert", "NEW"), ("update", "NEW"), ("delete", "OLD")):
        extra = ("INSERT INTO dash_dirty (union_id) SELECT union_id FROM redemption "
                 "WHERE id = OLD.redemption_id AND OLD.redemption_id IS NOT "
                 "NEW.redemption_id; ") if event == "update" else ""
        out.append(
            f"CREATE TRIGGER dash_mark_refund_{event} AFTER {event.upper()} ON refund BEGIN "
            f"INSERT INTO dash_dirty (union_id) SELECT union_id FROM redemption "
            f"WHERE id = {row}.redemption_id; {extra}END")
    out.append(
        "CREATE TRIGGER dash_mark_merchant_update AFTER UPDATE OF category ON merchant "
        "WHEN OLD.category IS NOT NEW.category BEGIN INSERT INTO dash_dirty (union_id) "
        "SELECT DISTINCT union_id FROM redemption WHERE merchant_id = NEW.id; END")
    return out


def sqlite_trigger_drop() -> list[str]:
    return [f"DROP TRIGGER IF EXISTS dash_mark_{t}_{e}"
            for t in ("voucher", "redemption", "member", "refund")
            for e in ("insert", "update", "delete")] + [
        "DROP TRIGGER IF EXISTS dash_mark_merchant_update"]


def _nf() -> list:
    return [sa.Column('n', sa.BigInteger(), nullable=False),
            sa.Column('fen', sa.BigInteger(), nullable=False)]


def _keys(*more) -> list:
    return [sa.Column('union_id', sa.Integer(), nullable=False),
            sa.Column('program_id', sa.Integer(), nullable=False),
            sa.Column('product_id', sa.Integer(), nullable=False), *more]


def upgrade() -> None:
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
    ddl = pg_trigger_ddl() if bind.dialect.name == 'postgresql' else sqlite_trigger_ddl()
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
    bind = op.get_bind()
    drop = pg_trigger_drop() if bind.dialect.name == 'postgresql' else sqlite_trigger_drop()
    for stmt in drop:
        op.execute(stmt)
    for t in ('voucher', 'issue_day', 'redemption', 'spend', 'redeem_day'):
        op.drop_index(f'ix_dash_{t}_union', table_name=f'dash_{t}')
    op.drop_index('ix_dash_dirty_union', table_name='dash_dirty')
    for t in ('dash_member', 'dash_redeem_day', 'dash_spend', 'dash_redemption',
              'dash_issue_day', 'dash_voucher', 'dash_state', 'dash_dirty'):
        op.drop_table(t)
