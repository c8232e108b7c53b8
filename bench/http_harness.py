"""What the HTTP benches share: a throwaway PostgreSQL database, a seeded world (a union with
members and issued vouchers, a merchant and its cashier's API token), and the real server in a
process group of its own on 127.0.0.1, stopped with its workers on every exit path.

Used by ``bench_http_redeem.py`` and ``attack_http.py``. Loopback only: ``throwaway_pg``
refuses an admin URL whose host is not this machine, and the server listens on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

SECRET = "bench-secret-key"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# ``civicvoucher serve`` as the console script runs it, whatever is on PATH
CLI = [sys.executable, "-c", "from civicvoucher.cli.main import run; run()"]


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def throwaway_pg(admin_url: str, prefix: str = "cv_bench") -> Iterator[str]:
    """A database of our own on the local server (``CREATE DATABASE``), dropped afterwards;
    yields its URL. Only the database made here is ever dropped."""
    u = make_url(admin_url)
    if u.host not in LOOPBACK:
        raise SystemExit(f"refusing {u.render_as_string(hide_password=True)}: "
                         "the bench runs against a server on this machine only")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield u.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def setup(url: str, vouchers_needed: int) -> dict:
    """Province, city, county, one union with members and ``vouchers_needed`` issued digital
    vouchers (ten per member), a supermarket and its cashier with an API token."""
    from stdnum.cn import ric, uscc

    from civicvoucher.api.state import AppState
    from civicvoucher.auth.service import create_user
    from civicvoucher.auth.tokens import issue_token
    from civicvoucher.core import clock
    from civicvoucher.db import Database
    from civicvoucher.funds.service import deposit
    from civicvoucher.members.rules import MemberRow, MemberStatus
    from civicvoucher.members.service import add_members
    from civicvoucher.merchants.models import Merchant
    from civicvoucher.merchants.rules import Channel, MerchantRow, MerchantStatus, category_for_mcc
    from civicvoucher.merchants.service import add_merchants
    from civicvoucher.orgs.service import create_org
    from civicvoucher.programs.service import create_program
    from civicvoucher.programs.spec import parse_program_spec
    from civicvoucher.schema import upgrade
    from civicvoucher.vouchers.issuance import issue, outstanding_account
    from civicvoucher.vouchers.models import Voucher
    from civicvoucher.vouchers.redemption import payable_account

    db = Database(url)
    upgrade(db.engine)
    per_member = 10
    members = vouchers_needed // per_member + 1
    now = clock.now()

    def u(n: int) -> str:
        body = f"91140100{n:09d}"[:17]
        return body + uscc.calc_check_digit(body)

    with db.session() as s:
        prov = create_org(s, level="province", name="省", division_code="140000")
        city = create_org(s, level="city", name="市", division_code="140100", parent_id=prov.id)
        county = create_org(s, level="county", name="县", division_code="140105",
                            parent_id=city.id)
        union = create_org(s, level="union", name="工会", uscc=u(1), unit_type="enterprise",
                           parent_id=county.id)
        rows = []
        for n in range(members):
            body = f"1101011990{n % 12 + 1:02d}{n % 28 + 1:02d}{n % 1000:03d}"
            body = f"{body[:6]}{1950 + n // 10000:04d}{body[10:]}"
            rows.append((n + 1, MemberRow(name=f"m{n}", id_number=body + ric.calc_check_digit(
                body + "0"), phone=None, union=u(1), status=MemberStatus.ACTIVE)))
        add_members(s, rows, key=SECRET.encode())
        add_merchants(s, [(1, MerchantRow(
            uscc=u(2), name="超市", mcc="5411", category=category_for_mcc("5411"),
            county_code="140105", channels=(Channel.OFFLINE,), status=MerchantStatus.ACTIVE))])
        merchant = s.execute(select(Merchant.id)).scalar_one()
        spec = parse_program_spec(dict(key="bench", name="bench", products=[dict(
            key="v", name="券", denominations_yuan=[10] * per_member,
            categories=["supermarket_fuel"], channels=["offline"],
            valid_from=now - timedelta(days=1), expires_at=now + timedelta(days=30))]))
        program, _ = create_program(s, spec=spec)
        deposit(s, org_id=union.id, amount_fen=members * per_member * 1000, source="fiscal",
                idem_key="bench")
        r = issue(s, union_id=union.id, program="bench", idem_key="bench")
        assert r.issuance.status == "completed", r.issuance.status
        cashier = create_user(s, username="cashier", role="cashier", merchant_id=merchant)
        token, _ = issue_token(s, user_id=cashier.user.id, kind="api", ttl=None)
        out_acct = outstanding_account(s, union.id, program.id)
        pay_acct = payable_account(s, merchant)
        vs = s.execute(select(Voucher.id, Voucher.code).order_by(Voucher.id)).all()
    state = AppState(db=db, secret_key=SECRET.encode())
    db.dispose()
    return dict(token=token, merchant=merchant, union=union.id, program=program.id,
                out_acct=out_acct, pay_acct=pay_acct, vouchers=vs, qr_key=state.qr_key)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """The server gets SIGTERM if this process dies without cleaning up (kill -9): uvicorn's
    supervisor then stops its workers, so nothing is left listening."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Server:
    """The API on 127.0.0.1 in its own process group: ``civicvoucher serve`` (``how="serve"``,
    as an operator runs it) or uvicorn with the app factory (``how="uvicorn"``, quiet logs).
    ``stop()`` ends the whole group (supervisor and workers), politely then by force."""

    def __init__(self, env: dict[str, str], *, workers: int, how: str = "uvicorn",
                 log: Path | None = None) -> None:
        self.port = free_port()
        self.log = log
        if how == "serve":
            cmd = [*CLI, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", str(workers)]
        else:
            cmd = [sys.executable, "-m", "uvicorn", "civicvoucher.api.app:create_app",
                   "--factory", "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
        out = open(log, "ab") if log is not None else None  # noqa: SIM115 - closed in stop()
        self._out = out
        self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        self.pid = self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}"
                                   + self._log_tail())
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not answer within {timeout:.0f} s" + self._log_tail())

    def _log_tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n--- server log (end) ---\n" + "\n".join(
            self.log.read_text(errors="replace").splitlines()[-30:])

    def worker_pids(self) -> list[int]:
        """The supervisor's children that serve requests (uvicorn's workers), not
        multiprocessing's resource tracker. With one worker, the supervisor itself."""
        kids = children(self.pid)
        workers = [p for p in kids if b"resource_tracker" not in _cmdline(p)]
        return workers or ([self.pid] if self.proc.poll() is None else [])

    def stop(self) -> None:
        try:
            for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
                try:
                    os.killpg(self.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    continue
                with contextlib.suppress(ProcessLookupError):  # anything left in the group
                    os.killpg(self.pid, signal.SIGKILL)
                break
        finally:
            if self._out is not None:
                self._out.close()


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc; every thread's list)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found += [int(x) for x in fh.read().split()]
    except OSError:
        return []
    return sorted(set(found))


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def rss_mb(pid: int) -> float | None:
    """Resident set size now (VmRSS), in MB of 2**20 bytes; None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
