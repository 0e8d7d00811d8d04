"""The watcher in-process on real local drop zones and a real store (SPEC §3.10, §6.1, §9.1).

Time is injected (``wall``) only where the test must control it (cron); everything else —
drop zones, store, jobs, receipts, mail outbox — is the real thing.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from onramp.formats.info_file import render_info
from onramp.service.watcher import PartnerFolders, Watcher
from onramp.settings import Settings, load_settings
from onramp.store.db import connect
from onramp.taxonomy.apply import apply_taxonomy
from onramp.taxonomy.load import load_taxonomy
from onramp.transports.dropzone import ENVIRONMENTS, open_dropzone

TAXONOMY = """
partners:
  - {pid: 7, name: acme, contacts: [ops@acme.example]}
  - {pid: 8, name: globex}
  - {pid: 9, name: initech}
data_sources:
  - {dpid: 21, owner: 7, name: Acme UUIDs, id_type: cookie, inbound_id_type: platform_uuid}
  - {dpid: 31, owner: 8, name: Globex UUIDs, id_type: cookie, inbound_id_type: platform_uuid}
  - {dpid: 41, owner: 9, name: Initech UUIDs, id_type: cookie, inbound_id_type: platform_uuid}
traits:
  - {sid: 101, name: Acme one, data_source: 21, type: onboarded, rule: 'ic == "1"'}
  - {sid: 301, name: Globex one, data_source: 31, type: onboarded, rule: 'ic == "1"'}
  - {sid: 401, name: Initech one, data_source: 41, type: onboarded, rule: 'ic == "1"'}
"""
DAY = "2026-11-22"
UUID = "12345678901234567890123456789012345678"


def make_settings(tmp_path: Path, **inbound) -> Settings:
    settings = load_settings(data_dir=tmp_path / "data", inbound={"settle_seconds": 0, **inbound})
    taxonomy, _ = load_taxonomy(TAXONOMY)
    con = connect(settings)
    try:
        apply_taxonomy(con, taxonomy)
    finally:
        con.close()
    return settings


def make_watcher(settings: Settings, **options) -> Watcher:
    partners = PartnerFolders(settings)
    options.setdefault("deliver_mail", False)  # mail is checked where it matters; it costs store round trips
    return Watcher(settings, [open_dropzone(settings, env, partners) for env in ENVIRONMENTS], poll_seconds=0.05, **options)


def zone(settings: Settings, env: str = "prod") -> Path:
    return Path(settings.data_dir) / "dropzone" / env


def drop(settings: Settings, name: str, lines: list[str], *, partner: str = "acme", env: str = "prod") -> Path:
    path = zone(settings, env) / partner / f"date={DAY}" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    return path


def receipt(settings: Settings, base: str, *, partner: str = "acme", env: str = "prod") -> dict:
    return json.loads((zone(settings, env) / partner / f"date={DAY}" / f"{base}.receipt.json").read_text())


def archived(settings: Settings, outcome: str, name: str, *, partner: str = "acme", env: str = "prod") -> bool:
    return (zone(settings, env) / outcome / partner / f"date={DAY}" / name).is_file()


def stored_receipts(settings: Settings) -> list[dict]:
    con = connect(settings)
    try:
        return [json.loads(b) for (b,) in con.execute("SELECT body FROM receipts ORDER BY created_at").fetchall()]
    finally:
        con.close()


def test_receipts_are_written_back_and_files_archived_by_outcome(tmp_path: Path):
    settings = make_settings(tmp_path)
    drop(settings, "ftp_dpm_21_1700000000.sync", [f"{UUID}\t1", "no tab here", f"{UUID}\t2"])
    drop(settings, "ftp_dpm_21_1700000001.sync", [])  # empty file: rejected as a whole (§3.3)
    drop(settings, "FTP_DPM_21_1700000002.sync", [f"{UUID}\t1"])  # unknown name: rejected (§3.1)
    drop(settings, "ftp_dpm_31_1700000003.sync", [f"{UUID}\t1"])  # acme may not write globex's source
    watcher = make_watcher(settings, deliver_mail=True)
    watcher.drain()

    good = receipt(settings, "ftp_dpm_21_1700000000.sync")
    assert good["files"][0]["status"] == "accepted" and good["environment"] == "prod"
    assert (good["records_received"], good["format_errors"], good["stored_records"]) == (3, 1, 1)
    assert good["files"][0]["uri"].startswith("file://")
    rejects = zone(settings) / "acme" / f"date={DAY}" / "ftp_dpm_21_1700000000.sync.rejects.tsv.gz"
    assert b"no tab here" in gzip.decompress(rejects.read_bytes())
    assert archived(settings, "processed", "ftp_dpm_21_1700000000.sync")

    assert receipt(settings, "ftp_dpm_21_1700000001.sync")["files"][0]["reason"] == "empty file"
    assert archived(settings, "rejected", "ftp_dpm_21_1700000001.sync")
    bad_name = receipt(settings, "FTP_DPM_21_1700000002.sync")
    assert bad_name["kind"] == "rejected_files" and bad_name["files"][0]["reason"].startswith("invalid file name")
    assert archived(settings, "rejected", "FTP_DPM_21_1700000002.sync")
    assert "may not" in receipt(settings, "ftp_dpm_31_1700000003.sync")["files"][0]["reason"]
    assert archived(settings, "rejected", "ftp_dpm_31_1700000003.sync")

    # Nothing left to process; each file produced exactly one stored receipt and one mail.
    assert sorted(p.name for p in (zone(settings) / "acme" / f"date={DAY}").iterdir()) == sorted(
        [f"{b}.receipt.json" for b in ("ftp_dpm_21_1700000000.sync", "ftp_dpm_21_1700000001.sync",
                                        "FTP_DPM_21_1700000002.sync", "ftp_dpm_31_1700000003.sync")]
        + ["ftp_dpm_21_1700000000.sync.rejects.tsv.gz"])
    assert len(stored_receipts(settings)) == 4
    assert len(list((Path(settings.data_dir) / "outbox").glob("*.eml"))) == 4
    assert not list((Path(settings.data_dir) / "inflight").iterdir())
    assert watcher.jobs_run == 4


def test_split_parts_are_one_job_and_one_receipt(tmp_path: Path):
    settings = make_settings(tmp_path)
    drop(settings, "ftp_dpm_21_1700000000.sync.1.gz", [f"{UUID}\t1"])
    drop(settings, "ftp_dpm_21_1700000000.sync.2.gz", [f"{UUID[:-1]}9\t1", "bad"])
    make_watcher(settings).drain()
    r = receipt(settings, "ftp_dpm_21_1700000000.sync")
    assert [f["name"] for f in r["files"]] == ["ftp_dpm_21_1700000000.sync.1.gz", "ftp_dpm_21_1700000000.sync.2.gz"]
    assert (r["records_received"], r["stored_records"]) == (3, 2)
    assert len(stored_receipts(settings)) == 1


def test_one_partners_backlog_does_not_delay_another(tmp_path: Path):
    settings = make_settings(tmp_path)
    for i in range(5):
        drop(settings, f"ftp_dpm_21_170000000{i}.sync", [f"{UUID}\t1"])
    drop(settings, "ftp_dpm_31_1700000000.sync", [f"{UUID}\t1"], partner="globex")
    watcher = make_watcher(settings)
    jobs_until_globex = 0
    while not archived(settings, "processed", "ftp_dpm_31_1700000000.sync", partner="globex"):
        jobs_until_globex += watcher.step()
        assert jobs_until_globex <= 6
    # acme's five files were all waiting first, yet globex's ran in the first round.
    assert jobs_until_globex <= 2
    watcher.drain()
    assert len(stored_receipts(settings)) == 6


@pytest.mark.parametrize("slots", [1, 2])
def test_a_partner_arriving_during_a_backlog_runs_in_the_next_round(tmp_path: Path, slots: int):
    """The file of a partner that shows up while another partner's backlog is being worked
    starts in the next round of jobs — files fetched ahead for the backlog do not go first.
    With one job at a time that round is one job; with two, it runs next to the backlog's."""
    settings = make_settings(tmp_path, concurrent_jobs=slots)
    for i in range(6):
        drop(settings, f"ftp_dpm_21_170000000{i}.sync", [f"{UUID}\t1"])
    watcher = make_watcher(settings)
    assert watcher.slots == slots
    while not watcher.step():
        pass
    drop(settings, "ftp_dpm_31_1700000000.sync", [f"{UUID}\t1"], partner="globex")
    jobs = steps = 0
    while not archived(settings, "processed", "ftp_dpm_31_1700000000.sync", partner="globex"):
        jobs += watcher.step()
        steps += 1
        assert jobs <= 6
    assert (steps, jobs) == (1, slots), "globex's file should be in the next round"
    watcher.drain()
    assert watcher.jobs_run == 7


def test_a_failing_job_is_retried_with_backoff_while_others_proceed(tmp_path: Path, monkeypatch):
    """A job that raises (not a rejected file: those get receipts) fails alone: the partner's
    file stays in the drop zone and is retried with a growing delay; other partners go on."""
    from onramp.service import ingest

    settings = make_settings(tmp_path)
    broken = drop(settings, "ftp_dpm_21_1700000000.sync", [f"{UUID}\t1"])
    for i in range(3):
        drop(settings, f"ftp_dpm_31_170000000{i}.sync", [f"{UUID}\t1"], partner="globex")
    attempts: list[float] = []
    real_run_job = ingest.run_job

    def run_job(*args, partner=None, **kwargs):
        if partner == 7 and fail["acme"]:  # e.g. the disk under acme's scratch data is full
            attempts.append(clock["now"])
            raise OSError("No space left on device")
        return real_run_job(*args, partner=partner, **kwargs)

    fail = {"acme": True}
    monkeypatch.setattr(ingest, "run_job", run_job)
    clock = {"now": time.time()}
    watcher = make_watcher(settings, wall=lambda: clock["now"])
    for _ in range(10):
        watcher.step()
    # globex's three files were processed; acme's failed once and waits out its delay.
    assert all(archived(settings, "processed", f"ftp_dpm_31_170000000{i}.sync", partner="globex") for i in range(3))
    assert len(attempts) == 1 and broken.exists() and watcher.jobs_run == 3

    def retried_after(seconds: float) -> bool:
        before = len(attempts)
        clock["now"] += seconds
        for _ in range(3):
            watcher.step()
        return len(attempts) > before

    poll = watcher.poll
    assert retried_after(2.5 * poll)  # first delay: 2 polls
    assert not retried_after(2.5 * poll)  # second delay: 4 polls
    assert retried_after(2 * poll)
    assert not retried_after(7 * poll)  # third delay: 8 polls
    assert retried_after(2 * poll)
    assert broken.exists() and [r["partner"] for r in stored_receipts(settings)] == [8, 8, 8], "no receipt for a failed job"

    fail["acme"] = False  # the cause is fixed: the next retry processes the file, once
    clock["now"] += 60
    watcher.drain()
    assert archived(settings, "processed", broken.name)
    assert receipt(settings, broken.name)["stored_records"] == 1
    assert len(stored_receipts(settings)) == 4 and watcher.jobs_run == 4


def test_an_info_file_listing_all_parts_skips_the_settle_window(tmp_path: Path):
    settings = make_settings(tmp_path, settle_seconds=3600)
    p1 = drop(settings, "ftp_dpm_21_1700000000.sync.1", [f"{UUID}\t1"])
    watcher = make_watcher(settings)
    watcher._initial = False  # these uploads are "seen arriving", not found at start
    for _ in range(3):
        watcher.step()
    assert p1.exists() and watcher.jobs_run == 0  # one hour to settle

    p2 = drop(settings, "ftp_dpm_21_1700000000.sync.2", [f"{UUID}\t1"])
    info = render_info([(p.name, p.read_bytes(), 1) for p in (p1, p2)], "ftp_dpm_21_1700000000.sync")
    (p1.parent / "ftp_dpm_21_1700000000.info").write_bytes(info)
    watcher.step()
    watcher.step()
    assert watcher.jobs_run == 1
    assert [f["name"] for f in receipt(settings, "ftp_dpm_21_1700000000.sync")["files"]] == [p1.name, p2.name]
    assert archived(settings, "processed", "ftp_dpm_21_1700000000.info")  # the .info travels with its file


def test_cron_schedule_holds_settled_files_until_the_run(tmp_path: Path):
    settings = make_settings(tmp_path, schedule="30 0,12 * * *")
    drop(settings, "ftp_dpm_21_1700000000.sync", [f"{UUID}\t1"])
    # A day from now at 11:00 UTC; uploads (real mtimes) are long settled by then.
    day = (int(time.time()) // 86400 + 1) * 86400
    clock = {"now": day + 11 * 3600}
    watcher = make_watcher(settings, wall=lambda: clock["now"])
    watcher.step()
    watcher.step()
    assert watcher.jobs_run == 0
    clock["now"] = day + 12 * 3600 + 1800  # 12:30, the scheduled run
    watcher.step()
    watcher.step()
    assert watcher.jobs_run == 1
    # A file arriving after the run waits for the next one (00:30).
    drop(settings, "ftp_dpm_21_1700000001.sync", [f"{UUID}\t1"])
    clock["now"] = day + 23 * 3600
    watcher.step()
    watcher.step()
    assert watcher.jobs_run == 1
    clock["now"] = day + 24 * 3600 + 1800
    watcher.step()
    watcher.step()
    assert watcher.jobs_run == 2


def test_unknown_partner_folders_and_stray_infos(tmp_path: Path):
    settings = make_settings(tmp_path)
    stranger = drop(settings, "ftp_dpm_21_1700000000.sync", [f"{UUID}\t1"], partner="mallory")
    orphan = drop(settings, "ftp_dpm_21_1700000009.info", [])
    orphan.write_bytes(render_info([("ftp_dpm_21_1700000009.sync", b"", 0)], "x"))
    broken = drop(settings, "ftp_dpm_21_1700000008.info", ["{not json"])
    make_watcher(settings).drain()
    assert stranger.exists()  # never processed: no partner has that name
    assert archived(settings, "processed", orphan.name)
    assert archived(settings, "rejected", broken.name)
    assert stored_receipts(settings) == []


def test_a_file_changed_after_it_settled_is_not_processed_half_written(tmp_path: Path):
    settings = make_settings(tmp_path, settle_seconds=2)
    path = drop(settings, "ftp_dpm_21_1700000000.sync", [f"{UUID}\t1"])
    old = time.time() - 60
    os.utime(path, (old, old))
    watcher = make_watcher(settings)
    watcher.scan()  # settled (uploaded "while down") and queued ...
    with path.open("ab") as f:  # ... then the partner appends before the job starts
        f.write(f"{UUID[:-1]}7\t1\n".encode())
    watcher.step()
    assert watcher.jobs_run == 0 and path.exists()
    watcher.drain(timeout=30)
    assert receipt(settings, "ftp_dpm_21_1700000000.sync")["records_received"] == 2


def test_environments_keep_their_own_zones_and_profiles(tmp_path: Path):
    settings = make_settings(tmp_path)
    beta_uuid = UUID[:-1] + "3"
    drop(settings, "ftp_dpm_21_1700000000.sync", [f"{beta_uuid}\t1"], env="beta")
    make_watcher(settings).drain()
    r = receipt(settings, "ftp_dpm_21_1700000000.sync", env="beta")
    assert r["environment"] == "beta" and r["stored_records"] == 1
    assert archived(settings, "processed", "ftp_dpm_21_1700000000.sync", env="beta")
    con = connect(settings)
    try:
        envs = con.execute("SELECT DISTINCT env FROM realizations WHERE id = ?", [beta_uuid]).fetchall()
    finally:
        con.close()
    assert envs == [("beta",)]


def test_started_at_is_not_the_job_clock(tmp_path: Path):
    """The job clock (ONRAMP_NOW-style) stamps receipts; settling uses real time."""
    settings = make_settings(tmp_path)
    drop(settings, "ftp_dpm_21_1700000000.sync", [f"{UUID}\t1"])
    pinned = datetime(2030, 1, 2, 3, 4, 5)
    make_watcher(settings, clock=lambda: pinned).drain()
    assert receipt(settings, "ftp_dpm_21_1700000000.sync")["job_start"] == "2030-01-02T03:04:05Z"
    assert datetime.now(UTC).year < 2030


def test_archived_files_are_swept_hourly_after_the_retention_days(tmp_path: Path):
    """``inbound.s3_retention_days`` governs local processed/ and rejected/ too; checked hourly."""
    settings = make_settings(tmp_path, s3_retention_days=30)
    drop(settings, "ftp_dpm_21_1700000000.sync", [f"{UUID}\t1"])
    drop(settings, "ftp_dpm_21_1700000001.sync", [])  # empty: rejected
    stranger = drop(settings, "ftp_dpm_21_1700000002.sync", [f"{UUID}\t1"], partner="mallory")  # never handled
    old = time.time() - 90 * 86400
    os.utime(stranger, (old, old))
    start = time.time()
    clock = {"now": start}
    watcher = make_watcher(settings, wall=lambda: clock["now"])
    watcher.drain()
    kept = [("processed", "ftp_dpm_21_1700000000.sync"), ("rejected", "ftp_dpm_21_1700000001.sync")]
    assert all(archived(settings, *k) for k in kept)

    day, minute = 86400, 60
    clock["now"] = start + 30 * day - 30 * minute  # a sweep runs, but nothing is 30 days old yet
    watcher.step()
    assert all(archived(settings, *k) for k in kept)
    clock["now"] = start + 30 * day + 10 * minute  # old enough now, but the last sweep was 40 minutes ago
    watcher.step()
    assert all(archived(settings, *k) for k in kept)
    clock["now"] = start + 30 * day + 31 * minute  # an hour after the last sweep: this one deletes them
    watcher.step()
    assert not any(archived(settings, *k) for k in kept)
    assert stranger.exists(), "only archived files are swept, never uploads waiting in the drop zone"
    assert receipt(settings, "ftp_dpm_21_1700000000.sync")["stored_records"] == 1  # receipts written back stay


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def job_events(caplog) -> list[tuple[str, str]]:
    """("started" | "done", partner/base) of the watcher's log, in order."""
    pattern = re.compile(r"^\w+: (\w+)/date=[^/]+/(\S+) (started|done)\b")
    found = [pattern.match(r.getMessage()) for r in list(caplog.records) if r.name == "onramp.watcher"]
    return [(m[3], f"{m[1]}/{m[2]}") for m in found if m]


def drop_big(settings: Settings, name: str, partner: str, lines: int) -> None:
    path = zone(settings) / partner / f"date={DAY}" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{i:038d}\t1\n" for i in range(lines)).encode()
    path.write_bytes(gzip.compress(body, compresslevel=1))


def test_a_huge_file_never_holds_up_another_partners_file(tmp_path: Path, caplog):
    """The service loop (`run`), as `onramp serve` runs it, with two job slots: acme's and
    globex's big files are waiting; initech's small file, uploaded while the first big job
    runs, is answered before that job ends — the slot kept for small files takes it — and
    the second big file waits for the first (one slot for big files)."""
    settings = make_settings(tmp_path, concurrent_jobs=2, small_file_bytes=100_000)
    big = {"acme": "ftp_dpm_21_1700000000.sync.gz", "globex": "ftp_dpm_31_1700000000.sync.gz"}
    small = ("done", "initech/ftp_dpm_41_1700000000.sync")
    for partner, name in big.items():
        drop_big(settings, name, partner, 600_000)
    watcher = make_watcher(settings)
    stop = threading.Event()
    loop = threading.Thread(target=watcher.run, args=(stop,))
    with caplog.at_level(logging.INFO, logger="onramp.watcher"):
        loop.start()
        try:
            wait_for(lambda: any(e == "started" for e, _ in job_events(caplog)))
            drop(settings, "ftp_dpm_41_1700000000.sync", [f"{UUID}\t1"], partner="initech")
            wait_for(lambda: small in job_events(caplog))
            when_small_done = job_events(caplog)
            wait_for(lambda: all(archived(settings, "processed", n, partner=p) for p, n in big.items()), 180)
        finally:
            stop.set()
            loop.join(60)
    events = job_events(caplog)
    assert archived(settings, "processed", "ftp_dpm_41_1700000000.sync", partner="initech")
    firsts = [w for e, w in events if e == "started" and not w.startswith("initech")]
    assert [w for e, w in when_small_done if e == "started" and not w.startswith("initech")] == firsts[:1], \
        "the second big file waits while the first runs"
    assert [e for e in when_small_done if e[0] == "done"] == [small], "the small file ended first"
    assert events.index(("done", firsts[0])) < events.index(("started", firsts[1]))
    for partner, name in big.items():
        assert receipt(settings, name.removesuffix(".gz"), partner=partner)["stored_records"] == 600_000
    assert receipt(settings, "ftp_dpm_41_1700000000.sync", partner="initech")["stored_records"] == 1
    assert watcher.jobs_run == 3


def test_a_job_that_meets_another_jobs_write_runs_again_alone(tmp_path: Path, caplog):
    """Jobs run side by side; DuckDB refuses the second writer of a row. A job refused so is
    rolled back and runs again once it has the store alone: one receipt, no lost change."""
    settings = make_settings(tmp_path)
    drop(settings, "ftp_dpm_21_1700000000.sync", [f"{UUID}\t1"])
    watcher = make_watcher(settings)
    watcher.drain()
    drop(settings, "ftp_dpm_21_1700000001.sync", [f"{UUID}\t1"])  # realizes the same trait of the same profile again
    with caplog.at_level(logging.INFO, logger="onramp.watcher"):
        with watcher.turns.shared():  # another job of this process ...
            other = connect(settings)
            other.execute("BEGIN TRANSACTION")
            other.execute("UPDATE realizations SET realized_at = realized_at + INTERVAL 1 SECOND WHERE id = ?", [UUID])
            drainer = threading.Thread(target=watcher.drain)
            drainer.start()
            wait_for(lambda: any("running it again alone" in r.getMessage() for r in caplog.records))
            assert not archived(settings, "processed", "ftp_dpm_21_1700000001.sync")
            other.execute("COMMIT")  # ... ends; the refused job now gets the store alone
            other.close()
        drainer.join(60)
    assert receipt(settings, "ftp_dpm_21_1700000001.sync")["stored_records"] == 1
    assert archived(settings, "processed", "ftp_dpm_21_1700000001.sync")
    assert [r["files"][0]["name"] for r in stored_receipts(settings)] == ["ftp_dpm_21_1700000000.sync", "ftp_dpm_21_1700000001.sync"]
    con = connect(settings)
    try:
        assert con.execute("SELECT count(*) FROM realizations WHERE id = ?", [UUID]).fetchone() == (1,)
    finally:
        con.close()
    assert watcher.jobs_run == 2
