"""The ID-sync log (SPEC §2.1, ADR 0001): group commit, torn tails, and loading into the
store exactly once, producing the same links as file-based syncs (§2.3.3)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from onramp.server import synclog
from onramp.server.synclog import LoggedSyncs, SyncLog, SyncLogBusy, decode_records, encode_record, load_into_store
from onramp.service.ingest import run_job
from onramp.settings import Settings
from onramp.store.db import connect
from onramp.taxonomy.apply import apply_taxonomy
from onramp.taxonomy.load import load_taxonomy

U1 = "07955261652886032950143702505894272138"
U2 = "68079982765673198504052656074456196039"
T0 = 1_795_000_000_000  # ms


def links(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("SELECT env, dpid_a, id_a, dpid_b, id_b, last_seen FROM links ORDER BY ALL").fetchall()


def ts(ms: int) -> datetime:
    """The store's naive-UTC timestamp of a log record's milliseconds."""
    return datetime(1970, 1, 1) + timedelta(milliseconds=ms)


def write_log(data_dir: Path, records: list[bytes], *, commit_ms: float = 1) -> SyncLog:
    async def go() -> SyncLog:
        log = SyncLog(data_dir, commit_ms=commit_ms)
        log.open()
        await asyncio.gather(*(log.append(r) for r in records))
        await log.aclose()
        return log

    return asyncio.run(go())


@pytest.fixture
def store(tmp_path: Path):
    con = connect(Settings(data_dir=tmp_path))
    yield con
    con.close()


def test_records_round_trip_and_stop_at_a_torn_or_damaged_line():
    recs = [encode_record(T0 + i, "prod", 21, U1, f"user {i}/é") for i in range(3)]
    data = b"".join(recs)
    out = LoggedSyncs()
    assert decode_records(data + recs[0][:-5], out) == len(data)  # torn tail ignored
    assert out.dpuuid == ["user 0/é", "user 1/é", "user 2/é"] and out.seen_ms == [T0, T0 + 1, T0 + 2]
    damaged = recs[0] + recs[1].replace(b"user", b"usEr") + recs[2]
    out = LoggedSyncs()
    assert decode_records(damaged, out) == len(recs[0]) and len(out) == 1  # CRC mismatch
    out = LoggedSyncs()
    assert decode_records(data, out, limit=2) == len(recs[0]) + len(recs[1])


def test_group_commit_batches_concurrent_appends(tmp_path):
    n = 500
    log = write_log(tmp_path, [encode_record(T0, "prod", 21, U1, f"u{i}") for i in range(n)], commit_ms=5)
    assert 1 <= log.batches < n / 10, "concurrent syncs share fsyncs"
    out = LoggedSyncs()
    data = synclog.segment_path(synclog.log_dir(tmp_path), 1).read_bytes()
    used = decode_records(data, out)
    assert sorted(out.dpuuid) == sorted(f"u{i}" for i in range(n))
    assert len(data) == synclog.SEGMENT_BYTES and data[used:] == bytes(len(data) - used), "written into a zero-filled segment"


def test_segments_rotate_when_full_while_syncs_keep_coming(tmp_path):
    async def go() -> SyncLog:
        log = SyncLog(tmp_path, commit_ms=0, segment_bytes=2000)
        log.open()

        async def browser(k: int) -> None:  # staggered, so appends arrive while the fsync thread rotates
            for i in range(30):
                await asyncio.sleep(0.0003 * k)
                await log.append(encode_record(T0, "prod", 21, U1, f"r{k}-{i}"))

        await asyncio.gather(*(browser(k) for k in range(8)))
        await log.aclose()
        return log

    log = asyncio.run(go())
    directory = synclog.log_dir(tmp_path)
    seqs = synclog.segments(directory)
    assert len(seqs) >= 8 and seqs[-1] == log.segment
    out = LoggedSyncs()
    for seq in seqs:
        decode_records(synclog.segment_path(directory, seq).read_bytes(), out)
    for k in range(8):  # nothing lost, each browser's syncs in order
        assert [u for u in out.dpuuid if u.startswith(f"r{k}-")] == [f"r{k}-{i}" for i in range(30)]


def test_one_writer_per_data_directory(tmp_path):
    first = SyncLog(tmp_path, commit_ms=1)
    first.open()
    try:
        with pytest.raises(SyncLogBusy) as info:
            SyncLog(tmp_path, commit_ms=1).open()
        assert "--data-dir" in info.value.hint
    finally:
        first.close()
    second = SyncLog(tmp_path, commit_ms=1)  # the lock is released with the writer
    second.open()
    second.close()


def test_load_is_exactly_once_across_restarts_torn_tails_and_rollbacks(tmp_path, store):
    write_log(tmp_path, [encode_record(T0, "prod", 21, U1, "a"), encode_record(T0 + 5, "prod", 21, U1, "b")])
    seg1 = synclog.segment_path(synclog.log_dir(tmp_path), 1)
    end = decode_records(seg1.read_bytes(), LoggedSyncs())
    with seg1.open("r+b") as f:  # a crash in the middle of a write
        f.seek(end)
        f.write(encode_record(T0, "prod", 21, U1, "torn")[:20])
    write_log(tmp_path, [encode_record(T0 + 9, "prod", 22, U2, "c"), encode_record(T0 + 7, "prod", 21, U1, "a")])

    store.execute("BEGIN TRANSACTION")
    assert load_into_store(store, tmp_path) == 4
    store.execute("ROLLBACK")  # e.g. the job that loaded them failed: nothing was consumed
    assert links(store) == []

    store.execute("BEGIN TRANSACTION")
    assert load_into_store(store, tmp_path) == 4
    store.execute("COMMIT")
    assert links(store) == [
        ("prod", 0, U1, 21, "a", ts(T0 + 7)),  # seen twice: the latest sighting wins
        ("prod", 0, U1, 21, "b", ts(T0 + 5)),
        ("prod", 0, U2, 22, "c", ts(T0 + 9)),
    ]
    assert load_into_store(store, tmp_path) == 0
    assert not seg1.exists(), "a loaded segment is deleted once a newer one exists"

    write_log(tmp_path, [encode_record(T0 + 1, "prod", 21, U1, "b")])  # older than what is stored
    assert load_into_store(store, tmp_path) == 1
    assert links(store)[1][-1] == ts(T0 + 5), "last_seen never moves backwards"
    assert load_into_store(store, tmp_path) == 0  # prunes what the previous load committed
    assert synclog.segments(synclog.log_dir(tmp_path)) == [3], "the newest segment is kept for numbering"


def test_load_in_batches(tmp_path, store):
    write_log(tmp_path, [encode_record(T0, "prod", 21, U1, f"u{i}") for i in range(25)])
    got = [load_into_store(store, tmp_path, limit=10) for _ in range(4)]
    assert got == [10, 10, 5, 0]
    assert store.execute("SELECT count(*) FROM links").fetchall() == [(25,)]


def test_http_links_are_the_links_of_sync_files(tmp_path):
    """The same pair from a sync file and from the log is one link (§2.3.3, undirected)."""
    settings = Settings(data_dir=tmp_path / "data")
    taxonomy, _ = load_taxonomy("""
partners: [{pid: 7, name: acme}]
data_sources: [{dpid: 21, owner: 7, name: cookies, id_type: cookie, inbound_id_type: customer_id}]
""")
    con = connect(settings)
    apply_taxonomy(con, taxonomy)
    con.close()
    sync_file = tmp_path / "adobe_id_0_21_1700000000.sync"
    sync_file.write_text(f"{U1}\tvisitor-1\n{U2}\tvisitor-2\n")
    run_job(settings, [sync_file])
    write_log(settings.data_dir, [encode_record(T0, "prod", 21, U1, "visitor-1"), encode_record(T0, "prod", 21, U1, "visitor-3")])
    con = connect(settings)
    try:
        con.execute("BEGIN TRANSACTION")
        assert load_into_store(con, settings.data_dir) == 2
        con.execute("COMMIT")
        rows = con.execute("SELECT dpid_a, id_a, dpid_b, id_b FROM links ORDER BY id_b").fetchall()
    finally:
        con.close()
    assert rows == [(0, U1, 21, "visitor-1"), (0, U2, 21, "visitor-2"), (0, U1, 21, "visitor-3")]


def test_link_limits_of_section_1_7_apply_to_http_links(tmp_path, store):
    """A platform UUID keeps its 1,000 most recent cookie IDs, as after a sync file."""
    apply_taxonomy(store, load_taxonomy("""
partners: [{pid: 7, name: acme}]
data_sources: [{dpid: 21, owner: 7, name: cookies, id_type: cookie, inbound_id_type: customer_id}]
""")[0])
    write_log(tmp_path, [encode_record(T0 + i, "prod", 21, U1, f"c{i}") for i in range(1002)])
    assert load_into_store(store, tmp_path) == 1002
    kept = {r[0] for r in store.execute("SELECT id_b FROM links WHERE id_a = ?", [U1]).fetchall()}
    assert len(kept) == 1000 and not kept & {"c0", "c1"}


def test_server_loader_yields_to_a_job_of_the_same_process(tmp_path):
    """`onramp serve` runs jobs and the pixel in one process: the loader skips a cycle while a
    job holds the shared lock or has the same rows in an open transaction, and never fails it."""
    import threading

    from onramp.server.idsync import store_cycle

    settings = Settings(data_dir=tmp_path)
    write_log(tmp_path, [encode_record(T0, "prod", 21, U1, "job-first")])
    lock = threading.Lock()
    with lock:
        assert store_cycle(settings, wait=False, lock=lock) is None
    job = connect(settings)
    try:
        job.execute("BEGIN TRANSACTION")
        assert load_into_store(job, tmp_path) == 1
        assert store_cycle(settings, wait=False, lock=lock) is None  # same rows: it backs off
        job.execute("COMMIT")
    finally:
        job.close()
    loaded, dpids = store_cycle(settings, wait=False, lock=lock)
    assert loaded == 0 and 20914 in dpids  # the job loaded it; global sources always exist
    con = connect(settings, read_only=True)
    assert [r[4] for r in links(con)] == ["job-first"]
    con.close()
