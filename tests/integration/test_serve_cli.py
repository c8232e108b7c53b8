"""``civicvoucher serve`` refuses a port it cannot have before it says "serving on"."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def test_serve_on_a_taken_port_says_so_and_stops(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "CIVICVOUCHER_SECRET_KEY": "serve-test-key"}
        env.pop("CIVICVOUCHER_DATABASE_URL", None)
        r = subprocess.run(
            [sys.executable, "-c", "from civicvoucher.cli.main import run; run()", "serve",
             "--port", str(port), "--database-url", f"sqlite:///{tmp_path / 'serve.db'}"],
            capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "serving on" not in r.stdout
    assert "port_in_use" in r.stderr and "the port is in use" in r.stderr


def test_version():
    r = subprocess.run([sys.executable, "-c", "from civicvoucher.cli.main import run; run()",
                        "--version"], capture_output=True, text=True, timeout=60)
    from importlib.metadata import version

    assert (r.returncode, r.stdout.strip()) == (0, f"civicvoucher {version('civicvoucher')}")
