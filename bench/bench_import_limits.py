"""Hostile imports are refused fast and small, by the CLI and by the HTTP API.

    python bench/bench_import_limits.py [--rows 5000000] [--csv-mb 200] [--keep DIR]

Writes, in a temporary folder: a 5,000,000-row XLSX zip bomb (~5 MB that unzips to ~1.2 GB),
a 200 MB member CSV, a CSV of 5,000,000 short rows under the size limit (refused by the row
limit), an XLSX of 2,000,000 short rows that compresses only ~3:1 (refused by the row count
before parsing) and an XLSX with a row numbered 5,000,000. Then, for each file:

- CLI: ``/usr/bin/time -v civicvoucher member import FILE`` on a fresh SQLite database:
  wall time and maximum resident set size of the whole process.
- API: ``civicvoucher serve`` in a subprocess (a new one per file, so each peak is its own),
  POST /api/v1/members/import as a province admin, the multipart body streamed from the
  file; the 200 MB upload is sent with ``Expect: 100-continue`` as curl does, and once more
  without it. Time until the answer, and the server's peak RSS (VmHWM in /proc).

Prints one line per case and exits 1 if any refusal took 10 s or more, or 300 MB or more.
Loopback only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.import_files import (
    MEMBER_HEADER,
    declared_sizes,
    write_big_csv,
    write_xlsx_bomb,
    write_xlsx_gap,
    write_xlsx_many_rows,
)

SECRET = "bench-import-secret"
CLI = [sys.executable, "-c", "from civicvoucher.cli.main import run; run()"]
LIMIT_S, LIMIT_MB = 10.0, 300.0


def make_files(folder: Path, rows: int, csv_mb: int) -> dict[str, Path]:
    files = {
        "xlsx-bomb": folder / "bomb.xlsx",
        "csv-200mb": folder / "big.csv",
        "csv-5m-rows": folder / "rows.csv",
        "xlsx-2m-rows": folder / "rows.xlsx",
        "xlsx-gap": folder / "gap.xlsx",
    }
    t = time.perf_counter()
    write_xlsx_bomb(files["xlsx-bomb"], rows)
    write_big_csv(files["csv-200mb"], csv_mb * 1024 * 1024)
    with files["csv-5m-rows"].open("w", encoding="utf-8") as fh:
        fh.write(",".join(MEMBER_HEADER[:2]) + "\n")
        block = "a,1\n" * 100_000
        for _ in range(rows // 100_000):
            fh.write(block)
    write_xlsx_many_rows(files["xlsx-2m-rows"], 2_000_000)
    write_xlsx_gap(files["xlsx-gap"], rows)
    print(f"files written in {time.perf_counter() - t:.1f}s:")
    for name, path in files.items():
        extra = ""
        if path.suffix == ".xlsx":
            packed, unzipped = declared_sizes(path)["xl/worksheets/sheet1.xml"]
            extra = f" (sheet {packed / 2**20:.1f} MB zipped, {unzipped / 2**20:.0f} MB unzipped)"
        print(f"  {name:12} {path.stat().st_size / 2**20:8.1f} MB{extra}")
    return files


def env_for(db: Path) -> dict[str, str]:
    return {**os.environ, "CIVICVOUCHER_DATABASE_URL": f"sqlite:///{db}",
            "CIVICVOUCHER_SECRET_KEY": SECRET, "PYTHONPATH": os.pathsep.join(sys.path)}


def run_cli(folder: Path, name: str, path: Path) -> tuple[float, float, str]:
    db = folder / f"cli-{name}.db"
    r = subprocess.run(["/usr/bin/time", "-v", *CLI, "member", "import", str(path)],
                       capture_output=True, text=True, env=env_for(db), timeout=600)
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", r.stderr)
    parts = [float(p) for p in wall.group(1).split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    said = " ".join(line.strip() for line in r.stderr.splitlines()
                    if "import_too_large" in line or "error" in line.lower())[:160]
    return seconds, rss_kb / 1024, f"exit {r.returncode}: {said}"


def setup_api_db(db: Path) -> str:
    os.environ["CIVICVOUCHER_SECRET_KEY"] = SECRET
    from civicvoucher.auth.service import create_user
    from civicvoucher.auth.tokens import issue_token
    from civicvoucher.db import Database
    from civicvoucher.orgs.service import create_org
    from civicvoucher.schema import upgrade

    d = Database(f"sqlite:///{db}")
    upgrade(d.engine)
    with d.session() as s:
        prov = create_org(s, level="province", name="山西省总工会", division_code="140000")
        admin = create_user(s, username="admin", role="province-admin", password="x" * 16,
                            org_id=prov.id)
        token, _ = issue_token(s, user_id=admin.user.id, kind="api", ttl=None)
    d.dispose()
    return token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(db: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([*CLI, "serve", "--port", str(port)], env=env_for(db),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
                if sock.recv(100).startswith(b"HTTP/1.1 200"):
                    return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start")


def peak_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def upload(port: int, token: str, path: Path, *, expect: bool) -> tuple[float, str]:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{path.name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + path.stat().st_size + len(tail)
    request = (f"POST /api/v1/members/import HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Authorization: Bearer {token}\r\nIdempotency-Key: {uuid.uuid4()}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
               f"Content-Length: {length}\r\nAccept-Language: en\r\n"
               + ("Expect: 100-continue\r\n" if expect else "") + "\r\n").encode()
    started = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    answer = b""
    try:
        sock.sendall(request)
        send_body = True
        if expect:
            sock.settimeout(5)
            try:
                answer = sock.recv(65536)
                send_body = answer.startswith(b"HTTP/1.1 100")
                if send_body:
                    answer = b""
            except TimeoutError:
                pass  # no interim answer: send the body, as curl does after a second
            sock.settimeout(120)
        if send_body:
            try:
                sock.sendall(head)
                with path.open("rb") as fh:
                    while chunk := fh.read(1 << 20):
                        sock.sendall(chunk)
                sock.sendall(tail)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused mid-body: the answer is already waiting
        try:
            while b"\r\n\r\n" not in answer or not _complete(answer):
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    finally:
        sock.close()
    elapsed = time.perf_counter() - started
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    code = re.search(rb'"code":"([a-z_]+)"', answer)
    return elapsed, f"{status} {code.group(1).decode() if code else ''}"


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    m = re.search(rb"content-length: (\d+)", head, re.I)
    return m is not None and len(body) >= int(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--csv-mb", type=int, default=200)
    ap.add_argument("--keep", type=Path, default=None, help="write the files here, keep them")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="cv-import-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    failed = False
    try:
        files = make_files(folder, args.rows, args.csv_mb)
        print("\nCLI: civicvoucher member import FILE  (/usr/bin/time -v)")
        for name, path in files.items():
            seconds, mb, said = run_cli(folder, name, path)
            bad = seconds >= LIMIT_S or mb >= LIMIT_MB or "import_too_large" not in said
            failed |= bad
            print(f"  {name:12} {seconds:6.2f}s {mb:7.1f} MB peak RSS  {'FAIL ' if bad else ''}"
                  f"{said}")
        print("\nAPI: POST /api/v1/members/import  (server process, VmHWM)")
        cases = [(n, p, False) for n, p in files.items()] + [("csv-200mb", files["csv-200mb"],
                                                              True)]
        for name, path, expect in cases:
            db = folder / f"api-{name}-{int(expect)}.db"
            token = setup_api_db(db)
            proc, port = start_server(db)
            try:
                idle = peak_mb(proc.pid)
                seconds, said = upload(port, token, path, expect=expect)
                mb = peak_mb(proc.pid)
            finally:
                proc.terminate()
                proc.wait(10)
            bad = seconds >= LIMIT_S or mb >= LIMIT_MB or "413" not in said
            failed |= bad
            label = name + (" +Expect" if expect else "")
            print(f"  {label:20} {seconds:6.2f}s {mb:7.1f} MB peak RSS (idle {idle:.1f})  "
                  f"{'FAIL ' if bad else ''}{said}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
