"""``civicvoucher keys``: the keys that seal secrets at rest (docs/secrets.md).

Rotating the sealing key, in order (every step is safe to repeat):

1. ``civicvoucher keys new-sealing-key``: a fresh key at the end of the sealing-keys file;
2. give every process that opens the database (API workers, cron jobs, other hosts) that file
   and restart them: each seals new secrets under the new key and still opens the old ones;
3. ``civicvoucher keys rotate-secrets``: every channel secret and every merchant's bank account
   number sealed again under the current key, in one audited transaction (a second run moves
   nothing; ``rotate-channel-secrets`` is its old name);
4. ``civicvoucher keys status``: a key that seals nothing any more may be deleted from the file
   (``h1``, the ID-hash key's subkey, is never in the file and is simply left unused).
"""

from __future__ import annotations

import typer
from rich.markup import escape

from civicvoucher.cli.common import AS, audit, console, database, settings
from civicvoucher.i18n import _, localize, msg, nmsg

keys_app = typer.Typer(help="Keys that seal secrets at rest: status, a new key, rotation "
                            "(docs/secrets.md).", no_args_is_help=True)


@keys_app.command("status")
def keys_status() -> None:
    """Which sealing keys this process has, the current one, and how many channel secrets and
    merchant account numbers each seals (a key with none may be deleted from the sealing-keys
    file)."""
    from civicvoucher.keys import sealing_keys_file, sealing_status

    db = database()
    with db.session() as s:
        got = sealing_status(s, db.keyring)
    console.print(localize(msg("sealing-keys file: {path}", path=str(sealing_keys_file(
        settings())))), markup=False)
    current = escape(_("current"))
    for kid, n in got["keys"].items():
        mark = f"  [bold]{current}[/bold]" if kid == got["current"] else ""
        line = localize(nmsg("{kid}: {n} channel secret", "{kid}: {n} channel secrets", n,
                             kid=kid))
        accounts = localize(nmsg("{n} merchant account number", "{n} merchant account numbers",
                                 got["accounts"][kid]))
        console.print(f"  {escape(line)} · {escape(accounts)}{mark}")
    for kid, n in got["missing"].items():
        line = localize(nmsg("{kid}: {n} channel secret sealed under a key this process does "
                             "not have", "{kid}: {n} channel secrets sealed under a key this "
                             "process does not have", n, kid=kid))
        console.print(f"  [red]{escape(line)}[/red]")
    for kid, n in got["accounts_missing"].items():
        line = localize(nmsg("{kid}: {n} merchant account number sealed under a key this "
                             "process does not have", "{kid}: {n} merchant account numbers "
                             "sealed under a key this process does not have", n, kid=kid))
        console.print(f"  [red]{escape(line)}[/red]")
    if got["unsealed"]:
        line = localize(msg("{n} unsealed", n=got["unsealed"]))
        console.print(f"  [red]{escape(line)}[/red]")
    if got["missing"] or got["accounts_missing"]:
        raise typer.Exit(1)


@keys_app.command("new-sealing-key")
def keys_new(_as: str = AS) -> None:
    """Append a fresh sealing key to the sealing-keys file; processes started from now on
    seal under it. Then restart every process, then rotate-secrets."""
    from civicvoucher.keys import add_sealing_key, sealing_keys_file

    db = database()  # first: refuses a wrong ID-hash key before touching the file
    path = sealing_keys_file(settings())
    kid = add_sealing_key(settings())
    with db.session() as s:
        audit(s, "keys.sealing_key.add", f"sealing_key:{kid}", {"file": str(path)})
    new = localize(msg("new sealing key {kid}", kid=kid))
    console.print(f"[green]{escape(new)}[/green] → {escape(str(path))}")
    console.print(_("give every process this file, restart them, then run civicvoucher keys "
                    "rotate-secrets"), markup=False)


def keys_rotate(_as: str = AS) -> None:
    """Seal every payment-channel secret and every merchant's bank account number again under
    the current sealing key (audited; running it again moves nothing)."""
    from civicvoucher.keys import reseal_channel_secrets, reseal_merchant_accounts

    db = database()
    ring = db.keyring

    def work(s):  # one transaction: a value this process cannot open stops all of it
        channels = reseal_channel_secrets(s, ring)
        accounts = reseal_merchant_accounts(s, ring)
        if channels:
            audit(s, "keys.channel_secrets.rotate", "payment_channel",
                  {"to": ring.current, "from": channels})
        if accounts:
            audit(s, "keys.merchant_accounts.rotate", "merchant",
                  {"to": ring.current, "from": accounts})
        return channels, accounts

    channels, accounts = db.run(work)
    if not channels and not accounts:
        console.print(localize(msg("every channel secret and merchant account number is sealed "
                                   "under the current key {kid}: nothing to do",
                                   kid=ring.current)), markup=False)
        return
    was = {name: [f"{k}: {n}" for k, n in sorted(moved.items())]
           for name, moved in (("channels", channels), ("accounts", accounts))}
    if channels:
        line = localize(nmsg("{n} channel secret sealed again under {kid} (from {was})",
                             "{n} channel secrets sealed again under {kid} (from {was})",
                             sum(channels.values()), kid=ring.current, was=was["channels"]))
        console.print(f"[green]{escape(line)}[/green]")
    if accounts:
        line = localize(nmsg("{n} merchant account number sealed again under {kid} (from {was})",
                             "{n} merchant account numbers sealed again under {kid} (from {was})",
                             sum(accounts.values()), kid=ring.current, was=was["accounts"]))
        console.print(f"[green]{escape(line)}[/green]")


keys_app.command("rotate-secrets")(keys_rotate)
keys_app.command("rotate-channel-secrets", hidden=True)(keys_rotate)  # its name before 0011
