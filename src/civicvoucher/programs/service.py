"""Program use cases: create from a spec (idempotent on the program key), look up."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from civicvoucher.core import clock, ids
from civicvoucher.errors import Conflict, NotFound
from civicvoucher.i18n import msg
from civicvoucher.programs.models import Product, Program
from civicvoucher.programs.spec import ProgramSpec


def _product_row(p) -> dict:
    return dict(
        key=p.key, kind=str(p.kind), name=p.name, denominations=p.denominations_fen,
        face_value_fen=sum(p.denominations_fen), threshold_fen=p.threshold_fen,
        categories=[str(c) for c in p.categories], channels=[str(c) for c in p.channels],
        region_scope=str(p.region_scope), valid_from=p.valid_from, expires_at=p.expires_at,
        optional=p.optional,
    )


def create_program(session: Session, *, spec: ProgramSpec) -> tuple[Program, bool]:
    """Store a program and its products. The key is the idempotency key: the same spec again
    returns the stored program (created=False); a different spec under that key is a conflict."""
    existing = session.execute(select(Program).where(Program.key == spec.key)).scalar_one_or_none()
    if existing is not None:
        if _fingerprint_program(session, existing) != _fingerprint_spec(spec):
            raise Conflict(
                msg("program {program} exists with a different definition", program=spec.key),
                code="idempotency_key_reused",
            )
        return existing, False
    program = Program(
        key=spec.key, name=spec.name, documents=list(spec.documents),
        per_member_fen=sum(sum(p.denominations_fen) for p in spec.products),
        created_at=clock.now(),
    )
    session.add(program)
    session.flush()
    for p in spec.products:
        session.add(Product(program_id=program.id, **_product_row(p)))
    session.flush()
    return program, True


def same_definition(session: Session, program: Program, spec: ProgramSpec) -> bool:
    return _fingerprint_program(session, program) == _fingerprint_spec(spec)


def replace_definition(session: Session, program: Program, spec: ProgramSpec) -> Program:
    """Give ``program`` the definition ``spec`` (same key): name, documents, products. Only
    for a program nothing refers to yet; ``vouchers.issuance.revise_program`` checks that."""
    session.execute(delete(Product).where(Product.program_id == program.id))
    program.name, program.documents = spec.name, list(spec.documents)
    program.per_member_fen = sum(sum(p.denominations_fen) for p in spec.products)
    for p in spec.products:
        session.add(Product(program_id=program.id, **_product_row(p)))
    session.flush()
    return program


def _fingerprint_spec(spec: ProgramSpec) -> tuple:
    return (spec.name, tuple(spec.documents),
            tuple(sorted(tuple(sorted(_product_row(p).items(), key=str)) for p in spec.products)))


def _fingerprint_program(session: Session, program: Program) -> tuple:
    rows = []
    for p in products_of(session, program.id):
        d = dict(
            key=p.key, kind=p.kind, name=p.name, denominations=list(p.denominations),
            face_value_fen=p.face_value_fen, threshold_fen=p.threshold_fen,
            categories=list(p.categories), channels=list(p.channels),
            region_scope=p.region_scope, valid_from=p.valid_from, expires_at=p.expires_at,
            optional=p.optional,
        )
        rows.append(tuple(sorted(d.items(), key=str)))
    return (program.name, tuple(program.documents), tuple(sorted(rows)))


def get_program(session: Session, ref: str | int) -> Program:
    q = select(Program).where(Program.key == str(ref))
    program = session.execute(q).scalar_one_or_none()
    if program is None and (pid := ids.as_id(ref)) is not None:
        program = session.get(Program, pid)
    if program is None:
        raise NotFound(msg("no program {ref}", ref=ref), code="program_not_found")
    return program


def products_of(session: Session, program_id: int) -> list[Product]:
    return list(
        session.execute(
            select(Product).where(Product.program_id == program_id).order_by(Product.id)
        ).scalars()
    )


def lock_program(session: Session, program_id: int, *, exclusive: bool) -> None:
    """Issuance holds the program row shared; an extension holds it exclusively, so vouchers
    being issued are either visible to the extension or issued with its new deadline.
    (SQLite transactions are serial already.)"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Program.id).where(Program.id == program_id)
                        .with_for_update(read=not exclusive))
