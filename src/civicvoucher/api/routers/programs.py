"""Programs and their products: defined once by the province, read by everyone who works."""

from __future__ import annotations

from fastapi import Depends, Path
from sqlalchemy import select
from sqlalchemy.orm import Session

from civicvoucher.api.pagination import Page, PageParams, page_params, paginate
from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import Ctx, ctx
from civicvoucher.api.schemas import ProductOut, ProgramOut
from civicvoucher.errors import ValidationError
from civicvoucher.i18n import msg
from civicvoucher.programs.models import Program
from civicvoucher.programs.service import create_program, get_program, products_of
from civicvoucher.programs.spec import ProgramSpec
from civicvoucher.vouchers.issuance import revise_program

router = make_router("/programs", "programs")


def program_out(s: Session, p: Program, created: bool | None = None,
                updated: bool | None = None) -> ProgramOut:
    return ProgramOut(
        id=p.id, key=p.key, name=p.name, documents=list(p.documents),
        per_member_fen=p.per_member_fen, created=created, updated=updated,
        products=[ProductOut(key=x.key, kind=x.kind, name=x.name,
                             denominations_fen=list(x.denominations),
                             threshold_fen=x.threshold_fen, categories=list(x.categories),
                             channels=list(x.channels), region_scope=x.region_scope,
                             valid_from=x.valid_from, expires_at=x.expires_at,
                             optional=x.optional)
                  for x in products_of(s, p.id)],
    )


@router.get("", response_model=Page[ProgramOut], name="list_programs")
def list_programs(page: PageParams = Depends(page_params),
                  c: Ctx = Depends(ctx)) -> Page[ProgramOut]:
    return c.db.run(lambda s: paginate(s, select(Program), Program.id, page,
                                       lambda p: program_out(s, p)))


@router.get("/{program}", response_model=ProgramOut, name="get_program_detail")
def get_program_detail(program: str = Path(min_length=1, max_length=80,
                                           pattern=r"^[a-z0-9][a-z0-9_-]*$",
                                           description="program key or id"),
                       c: Ctx = Depends(ctx)) -> ProgramOut:
    return c.db.run(lambda s: program_out(s, get_program(s, program)))


@router.post("", response_model=ProgramOut, status_code=201, name="create_program_route")
def create_program_route(spec: ProgramSpec, c: Ctx = Depends(ctx)) -> ProgramOut:
    """Define a program (the same body as the TOML program file). The program key is itself
    idempotent: the same definition again changes nothing; another one under it is a 409."""

    def run(s: Session) -> ProgramOut:
        program, created = create_program(s, spec=spec)
        if created:
            c.audit(s, "program.create", target=f"program:{program.key}",
                    detail={"per_member_fen": program.per_member_fen})
        return program_out(s, program, created)

    return c.db.run(run)


@router.put("/{program}", response_model=ProgramOut, name="update_program_route")
def update_program_route(spec: ProgramSpec,
                         program: str = Path(min_length=1, max_length=80,
                                             pattern=r"^[a-z0-9][a-z0-9_-]*$",
                                             description="program key or id"),
                         c: Ctx = Depends(ctx)) -> ProgramOut:
    """Change a program's definition (the same body as create, the same key) until it is
    launched: before its first issuance and before any extension (as ``program update FILE``).
    The same definition again changes nothing (``updated`` false); after launch the answer is
    409 ``program_launched`` (extend its deadline instead)."""

    def run(s: Session) -> ProgramOut:
        current = get_program(s, program)
        if spec.key != current.key:
            raise ValidationError(msg("the body's key {key} is not the program {program}",
                                      key=spec.key, program=current.key), field="key")
        revised, changed = revise_program(s, spec=spec)
        if changed:
            c.audit(s, "program.update", target=f"program:{revised.key}",
                    detail={"per_member_fen": revised.per_member_fen})
        return program_out(s, revised, updated=changed)

    return c.db.run(run)
