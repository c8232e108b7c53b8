"""secrets at rest: channel secrets sealed, shown-once secrets scrubbed from stored answers

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10 09:00:00

- ``payment_channel.secret`` becomes ``unsealed_secret`` (nullable) and ``secret_sealed`` is
  added. A migration has no key (the key lives outside the database), so it cannot seal: the
  first civicvoucher process that starts with the key (``civicvoucher db upgrade``, the API,
  any command: ``keys.bind_key``) seals every ``unsealed_secret`` into ``secret_sealed`` and
  clears it, in one audited transaction. Nothing else reads ``unsealed_secret``; run
  ``civicvoucher db upgrade`` (which does both) rather than a bare ``alembic upgrade``.
- ``idempotency_key.withheld``: the shown-once fields nulled in a stored answer, said again in
  its replay (``X-CV-Secret-Withheld``). Stored answers already holding an API token
  (``token``) or a channel secret (``channel_secret``) are scrubbed here: the field is set to
  null and named in ``withheld``.
- ``api_token.name``: 200 characters, as long as the API lets a name be (a longer one was a
  database error on PostgreSQL).

Downgrade refuses while any channel secret is sealed (a migration cannot open it).
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# the shown-once response fields as of this revision (api.schemas: ApiTokenOut, UserOut)
SHOWN_ONCE = ('token', 'channel_secret')
PAGE = 500


def _withhold(node, path: str, found: list[str]):
    if isinstance(node, dict):
        for k, v in node.items():
            here = f'{path}.{k}' if path else k
            if k in SHOWN_ONCE and v is not None:
                node[k] = None
                found.append(here)
            else:
                _withhold(v, here, found)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _withhold(v, f'{path}.{i}' if path else str(i), found)


def _scrub_stored_answers() -> int:
    conn = op.get_bind()
    k = sa.table('idempotency_key', sa.column('id', sa.Integer), sa.column('body', sa.LargeBinary),
                 sa.column('withheld', sa.String))
    if conn.dialect.name == 'postgresql':
        has = 'position(CAST(:n AS bytea) in body) > 0'
    else:
        has = 'instr(body, CAST(:n AS BLOB)) > 0'
    needles = ' OR '.join(has.replace(':n', f':n{i}') for i in range(len(SHOWN_ONCE)))
    params = {f'n{i}': f'"{name}"'.encode() for i, name in enumerate(SHOWN_ONCE)}
    scrubbed, last = 0, 0
    while True:
        rows = conn.execute(sa.text(
            f'SELECT id, body FROM idempotency_key WHERE id > :last AND body IS NOT NULL '
            f'AND ({needles}) ORDER BY id LIMIT {PAGE}'), {'last': last, **params}).all()
        if not rows:
            return scrubbed
        for rid, body in rows:
            last = rid
            try:
                doc = json.loads(bytes(body))
            except (ValueError, UnicodeDecodeError):
                continue
            found: list[str] = []
            _withhold(doc, '', found)
            if found:
                conn.execute(sa.update(k).where(k.c.id == rid).values(
                    body=json.dumps(doc, ensure_ascii=False, separators=(',', ':')).encode(),
                    withheld=','.join(found)[:200]))
                scrubbed += 1


def upgrade() -> None:
    with op.batch_alter_table('payment_channel', schema=None) as batch_op:
        batch_op.alter_column('secret', new_column_name='unsealed_secret',
                              existing_type=sa.String(length=128), nullable=True)
        batch_op.add_column(sa.Column('secret_sealed', sa.String(length=200), nullable=True))
    with op.batch_alter_table('idempotency_key', schema=None) as batch_op:
        batch_op.add_column(sa.Column('withheld', sa.String(length=200), nullable=True))
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.alter_column('name', existing_type=sa.String(length=100),
                              type_=sa.String(length=200), existing_nullable=True)
    _scrub_stored_answers()


def downgrade() -> None:
    conn = op.get_bind()
    sealed = conn.execute(sa.text('SELECT count(*) FROM payment_channel '
                                  'WHERE unsealed_secret IS NULL')).scalar()
    if sealed:
        raise RuntimeError(f'{sealed} channel secrets are sealed; a migration cannot open them '
                           '(it has no key): downgrading past 0009 is not supported')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.alter_column('name', existing_type=sa.String(length=200),
                              type_=sa.String(length=100), existing_nullable=True)
    with op.batch_alter_table('idempotency_key', schema=None) as batch_op:
        batch_op.drop_column('withheld')
    with op.batch_alter_table('payment_channel', schema=None) as batch_op:
        batch_op.drop_column('secret_sealed')
        batch_op.alter_column('unsealed_secret', new_column_name='secret',
                              existing_type=sa.String(length=128), nullable=False)
