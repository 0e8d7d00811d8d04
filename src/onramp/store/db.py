"""Opening the store: one DuckDB file per data directory, schema applied on open."""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from importlib import resources
from pathlib import Path

import duckdb

from onramp.formats.ids import GLOBAL_DEVICE_SOURCES
from onramp.settings import Settings

DB_FILE = "onramp.duckdb"
WAITERS_DIR = "store-waiters"  # one marker per command waiting for the store (``waiting_for_store``)
WAITER_FRESH_SECONDS = 5.0


def store_path(data_dir: Path) -> Path:
    return Path(data_dir) / DB_FILE


def is_write_conflict(exc: BaseException) -> bool:
    """DuckDB refused a write because another open transaction changed the same row.

    Jobs run side by side in `onramp serve` (``service.turns``); DuckDB checks their
    writes row by row and refuses the second writer of a row. Its transaction is then
    rolled back and running it again, once the other one has ended, succeeds.
    """
    return isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower()


def rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK after a failure; DuckDB has already rolled back when the failure was the COMMIT
    itself or a write conflict, and the error of saying so again would hide the real one."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


def connect(settings: Settings, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the store of ``settings.data_dir``.

    The memory limit makes big jobs spill to ``<data_dir>/tmp`` instead of growing RSS.
    """
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    spill = data_dir / "tmp"
    spill.mkdir(exist_ok=True)
    config = {
        "memory_limit": settings.engine.memory_limit,
        "temp_directory": str(spill),
        "preserve_insertion_order": "false",
    }
    if settings.engine.threads:
        config["threads"] = str(settings.engine.threads)
    con = _open_waiting(str(store_path(data_dir)), read_only, config, settings.engine.lock_wait_seconds)
    # DuckDB draws its own progress bar on stdout for statements over 2 s, which broke the
    # JSON that `onramp ingest --json` prints for big files; the CLI's Rich bars go to stderr.
    # The setting holds for the connection's cursors too (the job's work connection).
    con.execute("SET enable_progress_bar = false")
    if not read_only:
        _migrate(con)
    return con


def _open_waiting(path: str, read_only: bool, config: dict, wait: float) -> duckdb.DuckDBPyConnection:
    """Open the store, waiting while another process holds it.

    DuckDB lets one process write a database file at a time. The service opens the store
    only for a unit of work (a job, a batch of ID syncs), so a command run meanwhile waits
    seconds, not forever, and never fails with "database is locked" (ADR 0001). While it
    waits it says so in ``store-waiters/`` (``waiting_for_store``): the service then starts
    no new job until the command has had its turn, so a backlog cannot starve it.
    """
    deadline = time.monotonic() + wait
    delay, told = 0.05, False
    marker: Path | None = None
    try:
        while True:
            try:
                return duckdb.connect(path, read_only=read_only, config=config)
            except duckdb.IOException as exc:
                # "lock": another process has the file; "file handle conflict": another thread of
                # this process is opening or closing it at this instant.
                message = str(exc).lower()
                if ("lock" not in message and "file handle conflict" not in message) or time.monotonic() >= deadline:
                    raise
                if "lock" in message:
                    marker = _raise_hand(Path(path).parent, marker)
                if not told and time.monotonic() + 2 < deadline:
                    print("onramp: waiting for the store (another Onramp process is using it)…", file=sys.stderr)
                    told = True
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)


def _raise_hand(data_dir: Path, marker: Path | None) -> Path:
    """Create (or freshen) this waiter's marker in ``store-waiters/``."""
    if marker is None:
        marker = data_dir / WAITERS_DIR / f"{os.getpid()}-{threading.get_ident()}"
        marker.parent.mkdir(exist_ok=True)
    try:
        marker.touch()
    except OSError:
        pass  # a read-only data directory: the command still waits, just without asking for a turn
    return marker


def waiting_for_store(data_dir: Path | str) -> bool:
    """Whether a command of another process is waiting for the store right now.

    A waiter freshens its marker at least every second; one older than
    ``WAITER_FRESH_SECONDS`` belongs to a command that ended without removing it (killed),
    and is deleted once it is an hour old.
    """
    folder = Path(data_dir) / WAITERS_DIR
    if not folder.is_dir():
        return False
    now, waiting = time.time(), False
    for marker in folder.iterdir():
        try:
            age = now - marker.stat().st_mtime
        except FileNotFoundError:
            continue  # its command got the store meanwhile
        if age < WAITER_FRESH_SECONDS:
            waiting = True
        elif age > 3600:
            marker.unlink(missing_ok=True)
    return waiting


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    ddl = resources.files("onramp.store").joinpath("schema.sql").read_text()
    digest = hashlib.sha256(ddl.encode()).hexdigest()
    # Opening is frequent in the service (ADR 0001): skip the DDL when this schema is in place.
    try:
        if con.execute("SELECT value FROM onramp_meta WHERE key = 'schema_sha256'").fetchone() == (digest,):
            return
    except duckdb.CatalogException:
        pass
    con.execute(ddl)
    # The eight global device data sources exist without being declared (§1.5, §11.2).
    for f in GLOBAL_DEVICE_SOURCES.values():
        con.execute(
            """INSERT INTO data_sources (dpid, owner_pid, name, id_type, inbound_id_type, integration_code, is_global)
               SELECT ?, NULL, ?, 'device_advertising_id', 'customer_id', ?, true
               WHERE NOT EXISTS (SELECT 1 FROM data_sources WHERE dpid = ?)""",
            [f.dpid, f.name, f.integration_code, f.dpid],
        )
    # Last, so a crash half-way through migrating re-runs it on the next open.
    con.execute("CREATE TABLE IF NOT EXISTS onramp_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT OR REPLACE INTO onramp_meta VALUES ('schema_sha256', ?)", [digest])
