"""The ID-sync log: HTTP syncs made durable before the response, loaded into ``links`` later.

Why a log and not the store: DuckDB lets one process write the store at a time and the
pixel must answer thousands of calls per second while jobs and CLI commands use it
(ADR 0001). Each sync is appended to ``<data_dir>/idsync/<segment>.log``; appends are
group-committed (at most one ``fdatasync`` per ``http.idsync_commit_ms`` window) and a request
is answered only once the batch holding it is on disk (§2.1, issue #3).

Layout: one text record per line, ``crc32 TAB ms TAB env TAB dpid TAB uuid TAB dpuuid``
(a DPUUID never holds TAB or LF: §1.4 forbids control characters). Segments are
zero-filled and fsynced before use and then overwritten in place: an ``fdatasync`` then
flushes data only, without an ext4 journal commit that would wait for every other file's
dirty data (the store's checkpoints, other processes) — measured under a concurrent
writer, p99.9 of an fsync fell from 182 ms to 8 ms. Records end at the first zero byte.
Every writer start opens a NEW segment, so a record torn by ``kill -9`` can only be the
tail of a segment that is never written again; the reader skips it.

``load_into_store`` moves logged syncs into ``links`` and records how far it got
(segment, byte offset) in ``idsync_progress`` inside the caller's transaction, so a
crash before the commit loads the same records again and a crash after it never does.
Merging is idempotent anyway (``last_seen`` only moves forward).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import duckdb
import pyarrow as pa

from onramp.engine.link_limits import evict_over_limits
from onramp.errors import OnrampError
from onramp.store.db import is_write_conflict, rollback_quietly
from onramp.store.files import fsync_dir

LOG_DIR = "idsync"
SEGMENT_SUFFIX = ".log"
PREPARED_SUFFIX = ".prep"  # a zero-filled future segment; readers ignore it
SEGMENT_BYTES = 4 * 1024**2  # ~7 s of syncs at 5,000/s
_ZEROS = bytes(1024**2)
MAX_LOAD_RECORDS = 2_000_000  # per call; the next call continues where this one stopped

PROGRESS_DDL = """CREATE TABLE IF NOT EXISTS idsync_progress (
    segment     BIGINT NOT NULL,  -- first segment not completely loaded
    byte_offset BIGINT NOT NULL   -- bytes of that segment already loaded
)"""


class SyncLogBusy(OnrampError):
    """Another process is already writing ID syncs to this data directory."""


# -- records (pure) ------------------------------------------------------------------------------
def encode_record(seen_ms: int, env: str, dpid: int, uuid: str, dpuuid: str) -> bytes:
    """One log line. The CRC covers everything after it, so a torn or damaged line is detected."""
    body = f"{seen_ms}\t{env}\t{dpid}\t{uuid}\t{dpuuid}".encode()
    return b"%08x\t%s\n" % (zlib.crc32(body), body)


@dataclass
class LoggedSyncs:
    """Decoded records, column by column (ready for Arrow)."""

    seen_ms: list[int] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    dpid: list[int] = field(default_factory=list)
    uuid: list[str] = field(default_factory=list)
    dpuuid: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.seen_ms)


def decode_records(data: bytes, into: LoggedSyncs, *, limit: int | None = None) -> int:
    """Append the complete, intact records at the start of ``data`` to ``into``.

    Returns how many bytes they span. Stops at the first incomplete or damaged line (a
    write in progress, or the tail torn by a crash) or after ``limit`` records.
    """
    pos, n, end = 0, 0, len(data)
    while pos < end and (limit is None or n < limit):
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        line = data[pos:nl]
        fields = _decode_line(line)
        if fields is None:
            break
        ms, env, dpid, uuid, dpuuid = fields
        into.seen_ms.append(ms)
        into.env.append(env)
        into.dpid.append(dpid)
        into.uuid.append(uuid)
        into.dpuuid.append(dpuuid)
        pos, n = nl + 1, n + 1
    return pos


def _decode_line(line: bytes) -> tuple[int, str, int, str, str] | None:
    crc, sep, body = line.partition(b"\t")
    if not sep or len(crc) != 8:
        return None
    try:
        if int(crc, 16) != zlib.crc32(body):
            return None
        ms, env, dpid, uuid, dpuuid = body.decode().split("\t")
        return int(ms), env, int(dpid), uuid, dpuuid
    except ValueError:  # bad hex, bad UTF-8, wrong field count
        return None


# -- segments ------------------------------------------------------------------------------------
def log_dir(data_dir: Path) -> Path:
    return Path(data_dir) / LOG_DIR


def segments(directory: Path) -> list[int]:
    """Segment numbers present, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(int(p.stem) for p in directory.iterdir() if p.suffix == SEGMENT_SUFFIX and p.stem.isdigit())


def segment_path(directory: Path, seq: int) -> Path:
    return directory / f"{seq:012d}{SEGMENT_SUFFIX}"


def _prepare(directory: Path, seq: int, size: int) -> Path:
    """Write segment ``seq`` full of zeros and fsync it, under a name readers ignore."""
    path = directory / f"{seq:012d}{PREPARED_SUFFIX}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for offset in range(0, size, len(_ZEROS)):
            os.pwrite(fd, _ZEROS[: min(len(_ZEROS), size - offset)], offset)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


# -- writer ---------------------------------------------------------------------------------------
class SyncLog:
    """Group-committing appender, used from one asyncio event loop.

    ``await append(record)`` returns once the record is on disk. At most one ``write`` +
    ``fdatasync`` starts per commit window, on a single background thread so the event
    loop keeps serving: records arriving meanwhile share the next one. A record arriving
    after a quiet window is written at once, so a lightly loaded pixel answers in about
    one fsync, and a busy one in at most a window plus one fsync.
    """

    def __init__(self, data_dir: Path, *, commit_ms: float, segment_bytes: int = SEGMENT_BYTES):
        self.dir = log_dir(data_dir)
        self.window = max(commit_ms, 0) / 1000
        self.segment_bytes = segment_bytes
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._seq = 0
        self._size = 0
        self._broken = False
        self._open = False  # read by the event loop; _fd belongs to the fsync thread
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="idsync-fsync")
        self._preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="idsync-prepare")
        self._next: Future[Path] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[bytes] = []
        self._batch: asyncio.Future[None] | None = None
        self._last_flush = float("-inf")  # loop time the last write started
        self._timer: asyncio.Handle | None = None
        self._writing: asyncio.Future[None] | None = None
        self.batches = 0  # committed batches (for tests and the benchmark)

    def open(self) -> None:
        """Take the writer lock and start a new segment."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / "writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SyncLogBusy(f"another process writes ID syncs to {self.dir}",
                              hint="run one `onramp serve` per data directory, or give this one its own --data-dir") from None
        self._lock_fd = fd
        self._open = True
        for leftover in self.dir.glob(f"*{PREPARED_SUFFIX}"):  # prepared by a previous run, never used
            leftover.unlink()
        existing = segments(self.dir)
        self._seq = (existing[-1] if existing else 0)
        self._new_segment()

    def _new_segment(self) -> None:
        """Switch to the next segment: the one prepared in the background, or a fresh one.

        Runs on the fsync thread, or in ``open`` before any append: ``_fd`` is never touched elsewhere.
        """
        old, self._fd = self._fd, None
        if old is not None:
            os.close(old)
        self._seq += 1
        prepared = None
        if self._next is not None:
            try:
                prepared = self._next.result()
            except OSError:
                prepared = None
            self._next = None
        if prepared is None or not prepared.name.startswith(f"{self._seq:012d}"):
            prepared = _prepare(self.dir, self._seq, self.segment_bytes)
        path = segment_path(self.dir, self._seq)
        os.rename(prepared, path)
        fsync_dir(self.dir)  # the segment's name must survive a crash too
        self._fd = os.open(path, os.O_WRONLY)
        self._size = 0
        self._broken = False
        self._next = self._preparer.submit(_prepare, self.dir, self._seq + 1, self.segment_bytes)

    async def append(self, record: bytes) -> None:
        """Queue ``record`` and wait until the batch holding it is durable."""
        if not self._open:
            raise RuntimeError("SyncLog.open() was not called")
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        self._pending.append(record)
        batch = self._batch
        if batch is None:
            batch = self._batch = loop.create_future()
            if self._writing is None:
                self._schedule_flush()
        # shield: a cancelled request must not cancel the batch its neighbours wait for.
        await asyncio.shield(batch)

    def _schedule_flush(self) -> None:
        assert self._loop is not None
        delay = self._last_flush + self.window - self._loop.time()
        # call_soon even without delay: requests parsed in this loop iteration join the batch.
        self._timer = self._loop.call_later(delay, self._flush) if delay > 0 else self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._timer = None
        if self._writing is not None or self._batch is None:
            return
        data, batch = b"".join(self._pending), self._batch
        self._pending, self._batch = [], None
        assert self._loop is not None
        self._last_flush = self._loop.time()
        self._writing = self._loop.run_in_executor(self._executor, self._write, data)
        self._writing.add_done_callback(partial(self._written, batch))

    def _written(self, batch: asyncio.Future[None], done: asyncio.Future[None]) -> None:
        self._writing = None
        exc = done.exception()
        if exc is not None:
            batch.set_exception(exc)
        else:
            self.batches += 1
            batch.set_result(None)
        if self._batch is not None:  # arrived during the write
            self._schedule_flush()

    def _write(self, data: bytes) -> None:
        """Runs on the fsync thread: write after the last record (rotating when the segment
        is full), then fdatasync."""
        if self._fd is None or self._broken or (self._size and self._size + len(data) > self.segment_bytes):
            self._new_segment()
        assert self._fd is not None
        try:
            view, offset = memoryview(data), self._size
            while view:
                n = os.pwrite(self._fd, view, offset)
                view, offset = view[n:], offset + n
            os.fdatasync(self._fd)
        except OSError:
            # The segment may now end in a partial record: continue in a fresh one.
            self._broken = True
            raise
        self._size += len(data)

    async def aclose(self) -> None:
        """Commit what is queued, then release the file and the lock."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._writing is not None or self._batch is not None:
            if self._writing is not None:
                await asyncio.wait([self._writing])
            elif self._batch is not None:
                batch = self._batch
                self._flush()
                await asyncio.wait([batch])
        self.close()

    def close(self) -> None:
        """Release without flushing (use ``aclose`` from the event loop)."""
        self._open = False
        self._executor.shutdown(wait=True)
        self._preparer.shutdown(wait=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    @property
    def segment(self) -> int:
        return self._seq


# -- loader ---------------------------------------------------------------------------------------
log = logging.getLogger("onramp.idsync")
# Jobs of one process run side by side (service.turns) and each loads the log first: they
# take turns, since each load rewrites the one progress row.
_LOADING = threading.Lock()


def load_committed(con: duckdb.DuckDBPyConnection, data_dir: Path, *, skip_on_conflict: bool = False) -> int:
    """``load_into_store`` in a transaction of its own; returns how many records it read.

    ``skip_on_conflict``: a write conflict with a job that is writing the same links (an
    ID-sync file's) is no error; the records stay in the log for the next load.
    """
    with _LOADING:
        con.execute("BEGIN TRANSACTION")
        try:
            loaded = load_into_store(con, data_dir)
            con.execute("COMMIT")
            return loaded
        except BaseException as exc:
            rollback_quietly(con)
            if skip_on_conflict and is_write_conflict(exc):
                log.info("ID syncs left for the next load: a job is writing the same links (%s)", exc)
                return 0
            raise


def load_into_store(con: duckdb.DuckDBPyConnection, data_dir: Path, *, limit: int = MAX_LOAD_RECORDS) -> int:
    """Merge logged syncs not yet loaded into ``links``; returns how many records it read.

    Runs in the caller's transaction (an inbound job's, or the server's loader), which
    also holds the progress update, so loading twice after a crash is impossible, and
    harmless if it were. Links are stored exactly like file-based syncs (§2.3.3,
    ``engine.sync_plan.apply_links``): undirected, smaller ``(dpid, id)`` end first, then
    the §1.7 limits evict the oldest links around the IDs touched.
    Segments below the committed progress are deleted first: they are fully loaded.
    """
    directory = log_dir(data_dir)
    present = segments(directory)
    if not present:
        return 0
    con.execute(PROGRESS_DDL)
    rows = con.execute("SELECT segment, byte_offset FROM idsync_progress").fetchall()
    seg0, off0 = (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)
    if seg0 > present[-1]:
        # The writer never deletes its newest segment, so this log directory was recreated
        # by hand: start over rather than delete its unloaded segments.
        seg0, off0 = 0, 0
    for seq in present:
        if seq < seg0:
            segment_path(directory, seq).unlink(missing_ok=True)
    todo = [s for s in present if s >= seg0]
    syncs = LoggedSyncs()
    progress = (seg0, off0)
    for i, seq in enumerate(todo):
        start = off0 if seq == seg0 else 0
        used = decode_records(_read_from(segment_path(directory, seq), start), syncs, limit=limit - len(syncs))
        progress = (seq, start + used)
        if len(syncs) >= limit:
            break
        if i + 1 < len(todo):
            # A newer segment exists, so the writer has left this one: whatever follows
            # the last intact record is a tail torn by a crash and is skipped.
            progress = (todo[i + 1], 0)
    if len(syncs):
        _merge_links(con, syncs)
    if progress != (seg0, off0):
        con.execute("DELETE FROM idsync_progress")
        con.execute("INSERT INTO idsync_progress VALUES (?, ?)", list(progress))
    return len(syncs)


def _read_from(path: Path, start: int) -> bytes:
    """Bytes of ``path`` from ``start``. They may include records written but not yet
    fsynced; loading those is harmless: if a power loss then drops them from the log,
    the restarted writer continues in a new segment, so no later record is skipped."""
    try:
        with path.open("rb") as f:
            f.seek(start)
            return f.read()
    except FileNotFoundError:
        return b""


def _merge_links(con: duckdb.DuckDBPyConnection, syncs: LoggedSyncs) -> None:
    batch = pa.table({
        "seen_ms": pa.array(syncs.seen_ms, pa.int64()),
        "env": pa.array(syncs.env, pa.string()),
        "dpid": pa.array(syncs.dpid, pa.int32()),
        "uuid": pa.array(syncs.uuid, pa.string()),
        "dpuuid": pa.array(syncs.dpuuid, pa.string()),
    })
    con.register("_idsync_batch", batch)
    try:
        con.execute(
            """CREATE OR REPLACE TEMP TABLE idsync_links AS
            SELECT env,
                   CASE WHEN (d1, i1) <= (d2, i2) THEN d1 ELSE d2 END AS dpid_a,
                   CASE WHEN (d1, i1) <= (d2, i2) THEN i1 ELSE i2 END AS id_a,
                   CASE WHEN (d1, i1) <= (d2, i2) THEN d2 ELSE d1 END AS dpid_b,
                   CASE WHEN (d1, i1) <= (d2, i2) THEN i2 ELSE i1 END AS id_b,
                   max(seen) AS last_seen
              FROM (SELECT env, 0 AS d1, uuid AS i1, dpid AS d2, dpuuid AS i2,
                           make_timestamp(seen_ms * 1000) AS seen FROM _idsync_batch)
             GROUP BY ALL"""
        )
    finally:
        con.unregister("_idsync_batch")
    con.execute(
        """MERGE INTO links l USING idsync_links n
            ON l.env = n.env AND l.dpid_a = n.dpid_a AND l.id_a = n.id_a AND l.dpid_b = n.dpid_b AND l.id_b = n.id_b
          WHEN MATCHED THEN UPDATE SET last_seen = greatest(l.last_seen, n.last_seen)
          WHEN NOT MATCHED THEN INSERT (env, dpid_a, id_a, dpid_b, id_b, last_seen)
               VALUES (n.env, n.dpid_a, n.id_a, n.dpid_b, n.id_b, n.last_seen)"""
    )
    # The §1.7 limits, exactly as after a sync file (engine.link_limits).
    for (env,) in con.execute("SELECT DISTINCT env FROM idsync_links").fetchall():
        con.execute(
            """CREATE OR REPLACE TEMP TABLE touched AS
            SELECT dpid_a AS dpid, id_a AS id FROM idsync_links WHERE env = $env
            UNION SELECT dpid_b, id_b FROM idsync_links WHERE env = $env""",
            {"env": env},
        )
        evict_over_limits(con, env=env)
    con.execute("DROP TABLE idsync_links")
    con.execute("DROP TABLE IF EXISTS touched")
