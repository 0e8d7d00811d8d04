"""A CLI command while another process holds the store (ADR 0001, issue #3).

DuckDB lets one process have a database file open for writing. A real child process opens
the store read-write and holds it for a while (as `onramp serve` does during a job); the
real CLI started meanwhile must wait, say so, and then succeed — never fail with a lock error.
"""

from __future__ import annotations

import json
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


def test_a_command_gets_its_turn_during_a_backlog_of_jobs(tmp_path: Path) -> None:
    """Jobs of two partners run side by side, one after another, so the service always has
    the store open. The real CLI started meanwhile asks for a turn (``store-waiters/``): no
    new job starts, the running ones end, the command runs — long before the backlog is
    done — and then the jobs go on."""
    import gzip
    import threading

    from onramp.service.watcher import PartnerFolders, Watcher
    from onramp.taxonomy.apply import apply_taxonomy
    from onramp.taxonomy.load import load_taxonomy
    from onramp.transports.dropzone import ENVIRONMENTS, open_dropzone
    from tests.integration.test_serve_watcher import TAXONOMY

    settings = load_settings(data_dir=tmp_path / "data", inbound={"settle_seconds": 0, "concurrent_jobs": 2})
    con = connect(settings)
    try:
        apply_taxonomy(con, load_taxonomy(TAXONOMY)[0])
    finally:
        con.close()
    zone = Path(settings.data_dir) / "dropzone" / "prod"
    uploads = []
    for partner, dpid in (("acme", 21), ("globex", 31)):
        for i in range(8):
            path = zone / partner / "date=2026-11-22" / f"ftp_dpm_{dpid}_170000000{i}.sync.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            body = "".join(f"{n:038d}\t1\n" for n in range(i * 150_000, (i + 1) * 150_000)).encode()
            path.write_bytes(gzip.compress(body, compresslevel=1))
            uploads.append(path)
    partners = PartnerFolders(settings)
    watcher = Watcher(settings, [open_dropzone(settings, env, partners) for env in ENVIRONMENTS],
                      poll_seconds=0.05, deliver_mail=False)
    stop = threading.Event()
    loop = threading.Thread(target=watcher.run, args=(stop,))
    loop.start()
    try:
        while watcher.jobs_run < 2:  # the backlog is being worked
            time.sleep(0.02)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONRAMP_")}
        cli = subprocess.run([sys.executable, "-m", "onramp", "--data-dir", str(settings.data_dir), "receipts", "--json"],
                             capture_output=True, text=True, env=env, timeout=120, check=False)
        left_when_cli_ran = sum(p.exists() for p in uploads)
        deadline = time.monotonic() + 180
        while any(p.exists() for p in uploads):
            assert time.monotonic() < deadline, "the backlog did not finish after the command"
            time.sleep(0.05)
    finally:
        stop.set()
        loop.join(120)
    assert cli.returncode == 0, cli.stderr
    assert "locked" not in cli.stderr.lower()
    assert left_when_cli_ran >= 4, f"the command waited for the whole backlog ({left_when_cli_ran} files left)"
    assert len(json.loads(cli.stdout)) >= 2
    assert watcher.jobs_run == 16
    assert not list((Path(settings.data_dir) / "store-waiters").iterdir())

