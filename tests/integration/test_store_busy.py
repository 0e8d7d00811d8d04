"""A CLI command while another process holds the store (ADR 0001, issue #3).

DuckDB lets one process have a database file open for writing. A real child process opens
the store read-write and holds it for a while (as `onramp serve` does during a job); the
real CLI started meanwhile must wait, say so, and then succeed — never fail with a lock error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from onramp.settings import load_settings
from onramp.store.db import connect, store_path

HOLD_SECONDS = 2.0

_HOLDER = """
import sys, time
import duckdb
con = duckdb.connect(sys.argv[1])  # read-write, like a job
con.execute("BEGIN")
con.execute("SELECT count(*) FROM receipts").fetchall()
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
con.close()
"""


def test_a_command_waits_for_a_busy_store_and_then_succeeds(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    connect(load_settings(data_dir=data_dir)).close()  # the store exists, with its schema
    with subprocess.Popen([sys.executable, "-c", _HOLDER, str(store_path(data_dir)), str(HOLD_SECONDS)],
                          stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout.readline().strip() == "holding"
            held_at = time.monotonic()
            env = {k: v for k, v in os.environ.items() if not k.startswith("ONRAMP_")}
            cli = subprocess.run([sys.executable, "-m", "onramp", "--data-dir", str(data_dir), "receipts", "--json"],
                                 capture_output=True, text=True, env=env, timeout=120, check=False)
            waited = time.monotonic() - held_at
            assert holder.wait(30) == 0
        finally:
            if holder.poll() is None:
                holder.kill()
    assert cli.returncode == 0, cli.stderr
    assert "onramp: waiting for the store" in cli.stderr
    assert cli.stdout.strip() == "[]"
    for text in (cli.stdout, cli.stderr):
        assert "locked" not in text.lower() and "lock on file" not in text.lower()
    # It really waited for the holder instead of reading around it.
    assert waited >= HOLD_SECONDS * 0.8, waited
