"""``civicvoucher serve`` / ``user`` / ``token`` / ``audit``: the HTTP API's commands."""

from __future__ import annotations

import os

import typer
from rich.markup import escape

from civicvoucher.cli.common import AS
from civicvoucher.i18n import N_, _, localize, msg, nmsg

user_app = typer.Typer(help="API users (bootstrap: user create NAME --role province-admin).",
                       no_args_is_help=True)
token_app = typer.Typer(help="Long-lived API tokens for integrations.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port"),
    workers: int = typer.Option(1, min=1, max=64, help="worker processes"),
    database_url: str = typer.Option(None, help="default: CIVICVOUCHER_DATABASE_URL, else "
                                     "civicvoucher.db in the working folder"),
) -> None:
    """Run the HTTP API (OpenAPI at /api/v1/openapi.json, docs at /api/v1/docs)."""
    import uvicorn

    from civicvoucher.cli.common import console, database
    from civicvoucher.errors import Conflict

    if database_url:  # the workers read the same setting
        os.environ["CIVICVOUCHER_DATABASE_URL"] = database_url
    if problem := _port_taken(host, port):
        raise Conflict(msg("cannot listen on {host}:{port}: {problem}", host=host, port=port,
                           problem=problem), code="port_in_use")
    database()  # migrate once, before the workers start
    url = f"http://{host}:{port}/api/v1/docs"
    console.print(localize(msg("serving on {url}", url=url)), markup=False)
    # proxy_headers off: uvicorn would otherwise believe X-Forwarded-For from any loopback
    # peer; the API decides itself which proxies to believe (api/clientip.py).
    uvicorn.run("civicvoucher.api.app:create_app", factory=True, host=host, port=port,
                workers=workers, log_level="info", proxy_headers=False)


def _port_taken(host: str, port: int):
    """Why ``host:port`` cannot be listened on (in use, not an address here), or None.
    Checked before anything is printed, so "serving on" is never said of a port we lack.
    (uvicorn binds again a moment later; a port taken in between still fails there.)"""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return msg("unknown host ({error})", error=exc.strerror)
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return msg("the port is in use")
            return msg("address not available ({error})", error=exc.strerror or str(exc))
    return None


@user_app.command("create")
def user_create(
    username: str = typer.Argument(...),
    role: str = typer.Option(..., help="province-admin, city-admin, county-admin, union-admin, "
                             "merchant-admin, cashier, auditor, analyst, channel or member"),
    org: str = typer.Option(None, help="organisation (division code, USCC or id)"),
    merchant: str = typer.Option(None, help="merchant (USCC or id)"),
    member: int = typer.Option(None, help="member id"),
    channels: str = typer.Option(None, help="a channel only: the redemption channel kinds its "
                                 "callbacks may report, comma-separated (default online)"),
    password: str = typer.Option(None, help="(prompted if not given; env CIVICVOUCHER_PASSWORD)"
                                 "; never for a member, who sets their own"),
    sms: str = typer.Option(None, "--sms", help="a member only: send the activation code to "
                            "this phone (it must be the member's phone on file) instead of "
                            "printing it"),
    _as: str = AS,
) -> None:
    """Create an API user bound to its organisation, merchant or member. A member gets a
    one-time activation code (printed once for a sealed slip, or sent with --sms), never a
    password: the member sets their own with POST /api/v1/auth/activate."""
    from civicvoucher.auth.credentials import MemberPasswordRefused
    from civicvoucher.auth.roles import Role
    from civicvoucher.auth.service import create_user
    from civicvoucher.cli.common import audit, console, database
    from civicvoucher.errors import ValidationError
    from civicvoucher.merchants.service import find_merchant
    from civicvoucher.orgs.service import find_org

    r = Role.parse(role)
    if r is Role.MEMBER:
        if password is not None:
            raise MemberPasswordRefused(N_("a member sets their own password: leave --password "
                                           "out and give the member the activation code"),
                                        field="password")
    elif sms is not None:
        raise ValidationError(N_("only a member user gets an activation code"), field="sms")
    elif r is not Role.CHANNEL and password is None:
        password = os.environ.get("CIVICVOUCHER_PASSWORD") or typer.prompt(
            _("password"), hide_input=True, confirmation_prompt=True)
    with database().session() as s:
        new = create_user(s, username=username, role=r, password=password,
                          org_id=find_org(s, org).id if org else None,
                          merchant_id=find_merchant(s, merchant).id if merchant else None,
                          member_id=member,
                          channels=[c.strip() for c in channels.split(",") if c.strip()]
                          if channels else None)
        detail: dict = {"role": str(r)}
        sent = _invite(s, new.user.id, sms, detail) if r is Role.MEMBER else None
        audit(s, "user.create", f"user:{new.user.id}", detail)
    made = localize(msg("user {name} created ({role}, id {id})", name=username, role=str(r),
                        id=new.user.id))
    console.print(f"[green]{escape(made)}[/green]")
    if new.channel_secret:
        console.print(localize(msg("channel HMAC secret (shown once): {secret}",
                                   secret=new.channel_secret)), markup=False)
    if sent is not None:
        _print_invitation(*sent)


def _invite(s, user_id: int, sms: str | None, detail: dict):
    """Invite a member user (a new one-time code) and deliver it; notes how in ``detail``."""
    from civicvoucher.auth import credentials
    from civicvoucher.cli.common import settings

    key = settings().secret_key
    inv = credentials.invite(s, user_id=user_id, key=credentials.activation_key(key))
    sent_to = credentials.deliver(s, inv, phone=sms, id_key=key)
    detail.update({"delivery": "sms" if sent_to else "slip", "sent_to": sent_to,
                   "expires_at": inv.expires_at.isoformat(),
                   "voided_previous": inv.voided_previous,
                   "cleared_password": inv.cleared_password})
    return inv, sent_to


def _print_invitation(inv, sent_to: str | None) -> None:
    from civicvoucher.auth.credentials import format_code
    from civicvoucher.cli.common import console
    from civicvoucher.core.clock import format_local

    until = format_local(inv.expires_at)
    if sent_to:
        console.print(localize(msg("activation code sent to the member's phone {phone}, valid "
                                   "until {until}", phone=sent_to, until=until)), markup=False)
        return
    console.print(localize(msg("one-time activation code, shown only this once (print it on a "
                               "sealed slip for the member): {code}", code=format_code(inv.code)))
                  + "\n" + localize(msg("valid until {until}, usable once; the member sets "
                                        "their own password with it", until=until)),
                  markup=False)
    if inv.cleared_password:
        console.print(_("the old password is cleared and every token of the user revoked"))


@user_app.command("invite")
def user_invite(
    username: str = typer.Argument(..., help="the member user"),
    sms: str = typer.Option(None, "--sms", help="send the code to this phone (the member's "
                            "phone on file) instead of printing it"),
    _as: str = AS,
) -> None:
    """Invite a member user again: a new one-time activation code. The old code stops
    working, the password is cleared and every token revoked until the member activates."""
    from civicvoucher.auth.service import find_user
    from civicvoucher.cli.common import audit, database

    with database().session() as s:
        user = find_user(s, username)
        detail: dict = {}
        inv, sent_to = _invite(s, user.id, sms, detail)
        audit(s, "user.invite", f"user:{user.id}", detail)
    _print_invitation(inv, sent_to)


@token_app.command("create")
def token_create(username: str = typer.Argument(..., help="the user"),
                 name: str = typer.Option("cli", help="what the token is for"),
                 _as: str = AS) -> None:
    """Create a long-lived API token for a user; it is shown once."""
    from civicvoucher.auth.roles import Role
    from civicvoucher.auth.service import find_user
    from civicvoucher.auth.tokens import issue_token
    from civicvoucher.cli.common import audit, console, database
    from civicvoucher.errors import ValidationError

    with database().session() as s:
        user = find_user(s, username)
        if user.role == Role.MEMBER:
            raise ValidationError(N_("a member's token comes only from the member's own login"),
                                  field="username")
        secret, row = issue_token(s, user_id=user.id, kind="api", name=name, ttl=None)
        audit(s, "auth.token.create", f"token:{row.id}", {"user_id": user.id, "name": name})
    console.print(localize(msg("token {id} for {user} (shown once):", id=row.id,
                               user=username)) + f"\n{secret}", markup=False)


@token_app.command("revoke")
def token_revoke(token_id: int = typer.Argument(..., help="the token's number"),
                 _as: str = AS) -> None:
    """Revoke a token by its id."""
    from civicvoucher.auth.tokens import revoke
    from civicvoucher.cli.common import audit, console, database

    with database().session() as s:
        row = revoke(s, token_id=token_id)
        audit(s, "auth.token.revoke", f"token:{row.id}")
    console.print(localize(msg("token {id} revoked", id=token_id)), markup=False)


@audit_app.command("verify")
def audit_verify(
    anchor: str = typer.Option(None, help="a head exported earlier by `audit head`, as "
                               "SEQ:HASH (the MAC part may follow): the log must still reach it"),
) -> None:
    """Walk the audit chain; exit 1 naming every edited or deleted entry."""
    from civicvoucher.audit.service import chain_key, verify_now
    from civicvoucher.cli.common import console, database, settings

    at = None
    if anchor:
        seq, _, rest = anchor.partition(":")
        if not seq.isdigit() or len(rest.split(":")[0]) != 64:
            raise typer.BadParameter(_("use SEQ:HASH as printed by `audit head`"),
                                     param_hint="--anchor")
        at = (int(seq), rest.split(":")[0])
    n, breaks = verify_now(database(), key=chain_key(settings().secret_key), anchor=at)
    if not breaks:
        ok = localize(nmsg("audit log OK: {n} entry, chain intact",
                           "audit log OK: {n} entries, chain intact", n))
        console.print(f"[green]{escape(ok)}[/green]")
        return
    bad = localize(nmsg("audit log broken: {problems} problems in {n} entry",
                        "audit log broken: {problems} problems in {n} entries", n,
                        problems=len(breaks)))
    console.print(f"[red]{escape(bad)}[/red]")
    for b in breaks[:200]:
        console.print(f"  {escape(localize(b))}")
    raise typer.Exit(1)


@audit_app.command("head")
def audit_head() -> None:
    """Print the chain head as SEQ:HASH:MAC. Keep these lines somewhere the database's writers
    cannot reach (a ticket, another host, paper) and check later with `verify --anchor`: that
    is what catches the newest entries deleted together with an old copy of the head."""
    from civicvoucher.audit.service import read_head
    from civicvoucher.cli.common import database

    with database().session() as s:
        head = read_head(s)
    typer.echo(str(head) if head else "0:" + "0" * 64 + ":-")


def register(app: typer.Typer) -> None:
    """Add serve, user, token and audit to the ``civicvoucher`` command."""
    app.command("serve")(serve)
    app.add_typer(user_app, name="user")
    app.add_typer(token_app, name="token")
    app.add_typer(audit_app, name="audit")
